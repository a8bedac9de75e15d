/**
 * The synthesized definitions, run by the local runner against a tiny fake phase handler: the
 * orchestration alone (loop, Map, retries, Catch, Abort, naming, one run at a time).
 */
import type { Context } from 'aws-lambda';

import type { RunSummary } from '../../../lambda/handlers/handler';
import type { RunRef } from '../../../lambda/run/phase-payloads';
import { emptyCounts } from '../../../lambda/snapshot/manifest';

import {
  loadStateMachineDefinitions,
  type StateMachineDefinitions,
} from '../../../local/state-machine-definitions';
import { type InjectedFault, LocalStepFunctions, type PhaseCall } from '../../../local/state-machine-runner';
import { scheduledEvent } from '../../helpers/scheduled-event';

type Slice = {
  segment: number;
  totalSegments: number;
  cursor: string | null;
  step: number;
  tail: string | null;
};

/** What the real Commit and Abort return (the completion event is built from it). */
const summaryOf = (status: 'committed' | 'failed', snapshotId: string, manifestKey: string): RunSummary => ({
  snapshotId,
  runId: 'r1',
  status,
  manifestKey,
  manifestUri: `s3://bucket/${manifestKey}`,
  dt: '2026-11-27',
  trigger: 'scheduled',
  counts: emptyCounts(),
  files: 0,
  failedStep: null,
  errorType: null,
});

/** A stand-in for the job: SEGMENTS segments, each done after STEPS Work calls. */
function fakeJob(
  options: {
    segments?: number;
    steps?: number;
    fail?: (event: Record<string, unknown>) => Error | undefined;
  } = {},
) {
  const segments = options.segments ?? 3;
  const steps = options.steps ?? 4;
  const events: Record<string, unknown>[] = [];
  const handler = async (event: unknown, context: Context) => {
    const e = event as Record<string, unknown>;
    events.push(e);
    expect(context.getRemainingTimeInMillis()).toBeGreaterThan(0);
    const failure = options.fail?.(e);
    if (failure) throw failure;
    switch (e.phase) {
      case 'plan': {
        const execution = e.execution as { name: string };
        const run: RunRef = {
          snapshotId: execution.name,
          runId: 'r1',
          dt: '2026-11-27',
          planKey: 'p/runs/r1/plan.json',
          dryRun: false,
        };
        return {
          run,
          segments: Array.from({ length: segments }, (_, i) => ({ segment: i, totalSegments: segments })),
        };
      }
      case 'work': {
        const slice = e.slice as Slice;
        const step = slice.step + 1;
        return {
          run: e.run,
          slice: {
            ...slice,
            step,
            cursor: `c${slice.segment}-${step}`,
            tail: `tail-${slice.segment}-${step}`,
          },
          done: step >= steps,
        };
      }
      case 'commit':
        return {
          ...summaryOf('committed', (e.run as RunRef).snapshotId, 'm.json'),
          tails: e.tails,
        };
      case 'abort':
        return { ...summaryOf('failed', 'aborted', 'failed.json'), failedStep: e.failedStep, errorType: 'E' };
      default:
        throw new Error(`unknown phase ${String(e.phase)}`);
    }
  };
  return { handler, events };
}

class ApiAuthError extends Error {
  override readonly name = 'ApiAuthError';
}

let definitions: StateMachineDefinitions;
beforeAll(async () => {
  definitions = await loadStateMachineDefinitions();
}, 120_000);

const SCHEDULED = scheduledEvent('2026-11-27T02:00:00Z');

describe('the export definition through the local runner', () => {
  it('plans, loops Work until each segment is done, and commits the final tails only', async () => {
    const job = fakeJob({ segments: 3, steps: 4 });
    const sfn = new LocalStepFunctions(definitions, job.handler);

    const execution = await sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED);

    expect(execution.status).toBe('SUCCEEDED');
    expect(execution.calls).toEqual({
      ListRunningExecutions: 1,
      Plan: 1,
      Work: 12,
      Commit: 1,
      PublishCommitted: 1,
    });
    expect(execution.events.map((e) => e.event['detail-type'])).toEqual(['Snapshot Committed']);
    const plan = job.events.find((e) => e.phase === 'plan');
    expect(plan).toEqual({
      phase: 'plan',
      trigger: SCHEDULED,
      execution: { name: 'scheduled-20261127T020000Z', startTime: expect.any(String) },
    });
    const firstWorks = job.events.filter((e) => e.phase === 'work' && (e.slice as Slice).step === 0);
    expect(firstWorks.map((e) => e.slice)).toEqual(
      [0, 1, 2].map((segment) => ({ segment, totalSegments: 3, cursor: null, step: 0, tail: null })),
    );
    const commit = job.events.find((e) => e.phase === 'commit');
    expect(commit).toEqual({
      phase: 'commit',
      run: expect.objectContaining({ runId: 'r1' }),
      tails: ['tail-0-4', 'tail-1-4', 'tail-2-4'],
    });
    expect(execution.output).toMatchObject({ status: 'committed', snapshotId: 'scheduled-20261127T020000Z' });
  });

  it('retries a Work invocation that Lambda failed, from the same slice', async () => {
    const job = fakeJob({ segments: 2, steps: 3 });
    const injected: PhaseCall[] = [];
    const faults = (call: PhaseCall): InjectedFault | undefined => {
      if (call.state !== 'Work' || call.count !== 2) return undefined;
      injected.push(call);
      return { error: 'Sandbox.Timedout', at: 'after' };
    };
    const sfn = new LocalStepFunctions(definitions, job.handler, { faults });

    const execution = await sfn.startExecution('retry-once', SCHEDULED);

    expect(execution.status).toBe('SUCCEEDED');
    expect(execution.calls.Work).toBe(7);
    const retried = job.events.filter(
      (e) =>
        e.phase === 'work' &&
        JSON.stringify(e.slice) ===
          JSON.stringify((injected[0]?.payload as { slice?: Slice } | undefined)?.slice),
    );
    expect(retried).toHaveLength(2);
  });

  it('aborts after a Work whose Lambda errors outlast the retries, and ends FAILED with that error', async () => {
    const job = fakeJob({ segments: 2, steps: 3 });
    const sfn = new LocalStepFunctions(definitions, job.handler, {
      faults: (call) =>
        call.state === 'Work' && (call.payload as { slice: Slice }).slice.segment === 1
          ? { error: 'Lambda.ServiceException', at: 'before' }
          : undefined,
    });

    const execution = await sfn.startExecution('beyond-retries', SCHEDULED);

    expect(execution.status).toBe('FAILED');
    expect(execution.error?.Error).toBe('Lambda.ServiceException');
    expect(execution.calls.Commit).toBeUndefined();
    expect(execution.calls.Abort).toBe(1);
    const abort = job.events.find((e) => e.phase === 'abort');
    expect(abort).toMatchObject({
      phase: 'abort',
      failedStep: 'Work',
      run: { runId: 'r1' },
      error: { Error: 'Lambda.ServiceException' },
    });
    expect(execution.states).toEqual(
      expect.arrayContaining(['RecordWorkFailure', 'WaitForStragglers', 'Abort', 'Failed']),
    );
  });

  it('never retries an error the job threw: a 401 in one segment aborts the run at once', async () => {
    const job = fakeJob({
      segments: 3,
      steps: 5,
      fail: (e) =>
        e.phase === 'work' && (e.slice as Slice).segment === 2 && (e.slice as Slice).step === 1
          ? new ApiAuthError('401 from the API')
          : undefined,
    });
    const sfn = new LocalStepFunctions(definitions, job.handler);

    const execution = await sfn.startExecution('auth-fails', SCHEDULED);

    expect(execution.status).toBe('FAILED');
    expect(execution.error?.Error).toBe('ApiAuthError');
    expect(JSON.parse(execution.error?.Cause ?? '{}')).toEqual({
      errorType: 'ApiAuthError',
      errorMessage: '401 from the API',
      trace: [],
    });
    const failedWorks = job.events.filter(
      (e) => e.phase === 'work' && (e.slice as Slice).segment === 2 && (e.slice as Slice).step === 1,
    );
    expect(failedWorks).toHaveLength(1);
    expect(job.events.filter((e) => e.phase === 'abort')).toHaveLength(1);
    expect(job.events.at(-1)?.phase).toBe('abort');
  });

  it('aborts a failed Plan with no run', async () => {
    const job = fakeJob({
      fail: (e) =>
        e.phase === 'plan' ? Object.assign(new Error('bad event'), { name: 'InvalidEventError' }) : undefined,
    });
    const sfn = new LocalStepFunctions(definitions, job.handler);

    const execution = await sfn.startExecution('bad-plan', { nonsense: true });

    expect(execution.status).toBe('FAILED');
    expect(execution.error?.Error).toBe('InvalidEventError');
    expect(job.events.at(-1)).toEqual({
      phase: 'abort',
      failedStep: 'Plan',
      error: { Error: 'InvalidEventError', Cause: expect.stringContaining('bad event') },
    });
  });

  it('runs one execution at a time: a second run plans only after the first committed', async () => {
    const job = fakeJob({ segments: 2, steps: 3 });
    const sfn = new LocalStepFunctions(definitions, job.handler);

    const [first, second] = await Promise.all([
      sfn.startExecution('scheduled-20261127T020000Z', SCHEDULED),
      sfn.startExecution('audit-20261127T020001Z-abc', { reason: 'overlap test' }),
    ]);

    expect([first.status, second.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const phases = job.events.map(
      (e) =>
        `${e.phase}:${String((e.execution as { name?: string } | undefined)?.name ?? (e.run as RunRef | undefined)?.snapshotId)}`,
    );
    const firstCommit = phases.indexOf('commit:scheduled-20261127T020000Z');
    const secondPlan = phases.indexOf('plan:audit-20261127T020001Z-abc');
    expect(firstCommit).toBeGreaterThanOrEqual(0);
    expect(secondPlan).toBeGreaterThan(firstCommit);
    expect(second.states.filter((s) => s === 'WaitForTurn').length).toBeGreaterThan(0);
  });
});

describe('the scheduled-run launcher through the local runner', () => {
  it('names the export execution after the slot, with the scheduled event as its input', async () => {
    const job = fakeJob({ segments: 1, steps: 1 });
    const sfn = new LocalStepFunctions(definitions, job.handler);

    const launch = await sfn.launchScheduledSlot('2026-11-27T02:00:00Z');

    expect(launch.status).toBe('SUCCEEDED');
    expect(sfn.executionNames()).toEqual(['scheduled-20261127T020000Z']);
    const run = await sfn.execution('scheduled-20261127T020000Z');
    expect(run?.status).toBe('SUCCEEDED');
    expect(job.events[0]).toMatchObject({
      phase: 'plan',
      trigger: { time: '2026-11-27T02:00:00Z', source: 'aws.scheduler' },
    });
  });

  it('starts one run for a slot delivered twice, while it runs and after it ended', async () => {
    const job = fakeJob({ segments: 2, steps: 2 });
    const sfn = new LocalStepFunctions(definitions, job.handler);

    const [a, b] = await Promise.all([
      sfn.launchScheduledSlot('2026-11-28T02:00:00Z'),
      sfn.launchScheduledSlot('2026-11-28T02:00:00Z'),
    ]);
    await sfn.execution('scheduled-20261128T020000Z');
    const late = await sfn.launchScheduledSlot('2026-11-28T02:00:00Z');

    expect([a.status, b.status, late.status]).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(late.states).toContain('AlreadyStarted');
    expect(sfn.executionNames()).toEqual(['scheduled-20261128T020000Z']);
    expect(job.events.filter((e) => e.phase === 'plan')).toHaveLength(1);
  });
});

describe('the turn gate through the local runner, with ListExecutions answered in pages', () => {
  /** The fake job, with the Plan of `held` kept waiting until `release` is called. */
  function heldJob(held: string) {
    const job = fakeJob({ segments: 1, steps: 1 });
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    let planning!: () => void;
    const planStarted = new Promise<void>((resolve) => {
      planning = resolve;
    });
    const handler = async (event: unknown, context: Context) => {
      const e = event as Record<string, unknown>;
      if (e.phase === 'plan' && (e.execution as { name: string }).name === held) {
        planning();
        await released;
      }
      return job.handler(event, context);
    };
    return { handler, events: job.events, release, planStarted };
  }

  const plannedBy = (events: Record<string, unknown>[], name: string) =>
    events.some((e) => e.phase === 'plan' && (e.execution as { name: string }).name === name);

  /** Counts one execution's ListExecutions calls by state, as its fault injector is asked. */
  function listCounter() {
    const counts: Record<string, number> = {};
    const faults = (call: PhaseCall): InjectedFault | undefined => {
      if (call.state.startsWith('List')) counts[call.state] = (counts[call.state] ?? 0) + 1;
      return undefined;
    };
    return { counts, faults };
  }

  async function until(condition: () => boolean) {
    while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  it('keeps the second oldest of 101 running executions waiting: the oldest is on the second page', async () => {
    const job = heldJob('old-run');
    const sfn = new LocalStepFunctions(definitions, job.handler);
    const old = sfn.startExecution('old-run', SCHEDULED);
    await job.planStarted;
    const seen = listCounter();

    // The second oldest, then 99 newer ones: the first page (100, newest first) ends with it.
    const second = sfn.startExecution('second-run', { reason: 'queued' }, { faults: seen.faults });
    const newer = Array.from({ length: 99 }, (_, i) => sfn.runningElsewhere(`newer-${i}`));
    // Three looks at the list, or a Plan it should not have started (then the test fails at once).
    await until(() => plannedBy(job.events, 'second-run') || (seen.counts.ListRunningExecutions ?? 0) >= 3);

    expect(plannedBy(job.events, 'second-run')).toBe(false);
    expect(seen.counts.ListMoreRunningExecutions).toBeGreaterThanOrEqual(2);
    job.release();
    const [oldRun, secondRun] = await Promise.all([old, second]);
    for (const end of newer) end();

    expect([oldRun.status, secondRun.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const phases = job.events.map(
      (e) =>
        `${e.phase}:${(e.execution as { name?: string } | undefined)?.name ?? (e.run as RunRef).snapshotId}`,
    );
    expect(phases.indexOf('plan:second-run')).toBeGreaterThan(phases.indexOf('commit:old-run'));
    expect(secondRun.states.filter((s) => s === 'WaitForTurn').length).toBeGreaterThanOrEqual(3);
  });

  it('follows pages shorter than MaxResults and an empty last page, waiting and then proceeding', async () => {
    const job = heldJob('old-run');
    // Pages of 3: with 6 running the third page is empty (the second was full, so it had a token).
    const sfn = new LocalStepFunctions(definitions, job.handler, { listPageSize: 3 });
    const old = sfn.startExecution('old-run', SCHEDULED);
    await job.planStarted;
    const seen = listCounter();

    const second = sfn.startExecution('second-run', { reason: 'queued' }, { faults: seen.faults });
    const newer = Array.from({ length: 4 }, (_, i) => sfn.runningElsewhere(`newer-${i}`));
    // Three looks at the list, or a Plan it should not have started (then the test fails at once).
    await until(() => plannedBy(job.events, 'second-run') || (seen.counts.ListRunningExecutions ?? 0) >= 3);

    expect(plannedBy(job.events, 'second-run')).toBe(false);
    expect(seen.counts.ListMoreRunningExecutions).toBeGreaterThanOrEqual(4);
    // Once the old run ends, 6 are running again (a fifth newer one): second-run is the last entry
    // of a full second page, followed by an empty third.
    newer.push(sfn.runningElsewhere('newer-4'));
    job.release();
    const [oldRun, secondRun] = await Promise.all([old, second]);
    for (const end of newer) end();

    expect([oldRun.status, secondRun.status]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(secondRun.calls.Commit).toBe(1);
  });

  it('retries a failed ListExecutions, first page or later, and fails the run when it keeps failing', async () => {
    const job = fakeJob({ segments: 1, steps: 1 });
    // Pages of 1: the one running execution fills the first page, so a second page is read.
    const flaky = new LocalStepFunctions(definitions, job.handler, {
      listPageSize: 1,
      faults: (call) =>
        (call.state === 'ListRunningExecutions' && call.count <= 2) ||
        (call.state === 'ListMoreRunningExecutions' && call.count === 1)
          ? { error: 'Sfn.SfnException', at: 'before' }
          : undefined,
    });

    const recovered = await flaky.startExecution('flaky-list', SCHEDULED);

    expect(recovered.status).toBe('SUCCEEDED');
    expect(recovered.calls).toMatchObject({
      ListRunningExecutions: 3,
      ListMoreRunningExecutions: 2,
      Plan: 1,
    });

    const broken = new LocalStepFunctions(definitions, job.handler, {
      faults: (call) =>
        call.state === 'ListRunningExecutions' ? { error: 'Sfn.SfnException', at: 'before' } : undefined,
    });

    const failed = await broken.startExecution('broken-list', SCHEDULED);

    expect(failed).toMatchObject({ status: 'FAILED', error: { Error: 'Sfn.SfnException' } });
    // The first call and five retries.
    expect(failed.calls).toEqual({ ListRunningExecutions: 6 });
  });
});
