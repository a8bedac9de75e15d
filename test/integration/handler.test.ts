/**
 * The Lambda entry point as Lambda calls it: configuration from process.env at cold start, the
 * real clients, the local stack behind them, logs on stdout. Runs go through the deployed state
 * machine's definition on the local runner, every Task invoking `handler` itself; inputs no
 * execution sends are handed to it directly.
 */

import { createHash } from 'node:crypto';
import { ConfigError, InvalidPhaseInputError } from '../../lambda/core/errors';
import { closeRuntime, handler } from '../../lambda/handlers/handler';
import { getJson, listKeys, putJson } from '../../lambda/snapshot/s3-objects';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { fakeLambdaContext } from '../../local/state-machine-runner';
import { captureStdout, jsonLines } from '../helpers/capture-stdout';
import { type RunViaStateMachineOptions, runViaStateMachine } from '../helpers/run-via-state-machine';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readObjects, readVisibleSessions } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const API_KEY = 'sk_live_handler_secret_987';
const BASE_TIME = 1_764_115_200;
let stack: LocalStack;
let seeded: string[] = [];
/** The function's environment: the local stack's, this suite's table and prefix, logs and EMF on. */
let functionEnv: Record<string, string>;

beforeAll(async () => {
  stack = await startLocalStack({ api: { apiKey: API_KEY, baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, 'handler-users');
  seeded = await seedUsers(stack.dynamodbClient, 'handler-users', 50);
  functionEnv = {
    ...stack.env,
    USERS_TABLE_NAME: 'handler-users',
    EXPORT_PREFIX: 'handler',
    METRICS_ENABLED: 'true',
    LOG_LEVEL: 'INFO',
  };
}, 120_000);

afterEach(async () => {
  await closeRuntime();
});

afterAll(async () => {
  await stack?.stop();
});

const SLOT = '2026-11-20T02:00:00Z';

interface StepRecord {
  readonly pending: string[];
  readonly counts: { readonly users_scanned: number; readonly users_processed: number };
}

/** One run through the state machine, `handler` invoked as Lambda would, its stdout captured. */
async function runPrinted(
  trigger: unknown,
  env: Record<string, string> = {},
  options: RunViaStateMachineOptions = {},
) {
  const { result, error, output } = await captureStdout(() =>
    runViaStateMachine({ ...functionEnv, ...env }, trigger, { ...options, lambdaEntry: true }),
  );
  if (result === undefined) throw error;
  return { ...result, output };
}

/** What handler answers an input no execution sends: its error and what it printed. */
async function invokeDirectly(event: unknown, env: Record<string, string> = {}) {
  const restore = useProcessEnv({ ...functionEnv, ...env });
  try {
    return await captureStdout(() => handler(event, fakeLambdaContext(900_000)));
  } finally {
    restore();
  }
}

describe('handler', () => {
  it('runs the phases of a scheduled snapshot to a committed manifest, logging JSON and EMF metrics without the key', async () => {
    const result = await runPrinted(scheduledEvent(SLOT, 'aws.events'));

    expect(result.error).toBeUndefined();
    expect(result.execution.name).toBe('scheduled-20261120T020000Z');
    // Derived from the execution (its name and start time): a retried Plan names the same run.
    const plan = result.invocations.find((i) => i.phase === 'plan')?.payload as {
      execution: { name: string; startTime: string };
    };
    const runId = `r${new Date(plan.execution.startTime).toISOString().replace(/[-:.]/g, '')}-${createHash('sha256').update('scheduled-20261120T020000Z').digest('hex').slice(0, 6)}`;
    expect(result.run).toEqual({
      snapshotId: 'scheduled-20261120T020000Z',
      runId,
      dt: '2026-11-20',
      planKey: `handler/runs/dt=2026-11-20/scheduled-20261120T020000Z/${runId}/plan.json`,
      dryRun: false,
    });
    expect(result.execution.output).toMatchObject({
      snapshotId: 'scheduled-20261120T020000Z',
      runId,
      status: 'committed',
      manifestKey: `handler/manifests/dt=2026-11-20/scheduled-20261120T020000Z.${runId}.json`,
      counts: { users_processed: 50, users_failed: 0 },
    });
    expect(result.manifest).toMatchObject({ status: 'committed', run_id: runId });
    const lines = jsonLines(result.output);
    expect(lines).toContainEqual(expect.objectContaining({ level: 'INFO', message: 'snapshot committed' }));
    const emf = lines.filter((line) => '_aws' in line);
    expect(emf.find((line) => 'UsersProcessed' in line)).toMatchObject({
      UsersFailed: 0,
      UsersProcessed: 50,
      service: 'moonkey-session-export',
    });
    // Its own EMF line: only SnapshotCommitted carries the trigger dimension.
    expect(emf.find((line) => 'SnapshotCommitted' in line)).toMatchObject({
      SnapshotCommitted: 1,
      trigger: 'scheduled',
      service: 'moonkey-session-export',
    });
    expect(result.output).not.toContain(API_KEY);
  });

  it("stops a Work at a page boundary once Lambda's remaining time falls below the margin, and the next Work continues", async () => {
    // 60.1 s left with a 60 s margin: each Work may start pages for 100 ms only, and every
    // call takes 50 ms, so no Work gets through the five pages.
    stack.api.configure({ latencyMs: 50 });
    try {
      const result = await runPrinted(
        scheduledEvent('2026-11-21T02:00:00Z', 'aws.events'),
        { EXPORT_SCAN_PAGE_SIZE: '10', EXPORT_DEADLINE_MARGIN_MS: '60000' },
        { workBudgetMs: 60_100 },
      );

      expect(result.error).toBeUndefined();
      expect(result.execution.output).toMatchObject({ status: 'committed', counts: { users_processed: 50 } });
      const works = result.invocations.filter((i) => i.phase === 'work');
      expect(works.length).toBeGreaterThan(1);
      expect(works.filter((w) => (w.result as { done: boolean }).done === false)).toHaveLength(
        works.length - 1,
      );
      const visible = (await readVisibleSessions(stack.s3Client, stack.bucket, 'handler')).filter(
        (r) => r.run_id === result.run?.runId,
      );
      expect(new Set(visible.map((r) => r.id)).size).toBe(visible.length);
      // Every session once, none lost at a continuation, none twice.
      expect(visible.length).toBe(seeded.flatMap((id) => sessionsFor(id, BASE_TIME)).length);
    } finally {
      stack.api.configure({ latencyMs: 0 });
    }
  });

  it('stops a Work whose run was given up while it waited (the failed manifest exists), before it calls the API', async () => {
    stack.api.resetStats();
    let calledByFirstWork: number | undefined;
    // Pages of 10, a Work that takes no new page after 100 ms, and calls that take 150 ms: the
    // first Work can start at most concurrency + FEED_AHEAD (32) users before a call must finish,
    // so it ends within 4 of the 5 pages on any machine, and a second Work follows.
    stack.api.configure({ latencyMs: 150 });
    const result = await runPrinted(
      scheduledEvent('2026-11-22T02:00:00Z', 'aws.events'),
      { EXPORT_SCAN_PAGE_SIZE: '10', EXPORT_DEADLINE_MARGIN_MS: '60000' },
      {
        workBudgetMs: 60_100,
        // What an Abort that ran meanwhile leaves (another execution of the run, a Work the Map
        // had already let go): this run's failed manifest.
        onPhase: async (call) => {
          if (call.state !== 'Work' || call.count !== 1) return;
          calledByFirstWork = stack.api.stats.requests;
          const run = (call.payload as { run: { snapshotId: string; runId: string; dt: string } }).run;
          await putJson(
            stack.s3Client,
            stack.bucket,
            `handler/manifests/dt=${run.dt}/${run.snapshotId}.${run.runId}.json`,
            { status: 'failed' },
          );
        },
      },
    );

    stack.api.configure({ latencyMs: 0 });
    expect(result.execution.status).toBe('FAILED');
    expect(result.error?.name).toBe('RunAbandonedError');
    expect(result.invocations.filter((i) => i.phase === 'work').map((w) => w.error)).toEqual([
      undefined,
      'RunAbandonedError',
    ]);
    // The first Work's pages only: the second asked S3 first and called no one.
    expect(calledByFirstWork).toBeGreaterThanOrEqual(10);
    expect(calledByFirstWork).toBeLessThan(seeded.length);
    expect(stack.api.stats.requests).toBe(calledByFirstWork);
    expect(result.manifest).toMatchObject({
      status: 'failed',
      error: { type: 'RunAbandonedError', step: 'Work' },
    });
  });

  it('refuses an input that is not a phase of the state machine, naming the problem, and writes nothing', async () => {
    const before = await listKeys(stack.s3Client, stack.bucket, '');

    const { error, output } = await invokeDirectly(scheduledEvent(SLOT, 'aws.events'));

    expect(error).toBeInstanceOf(InvalidPhaseInputError);
    expect((error as Error).name).toBe('InvalidPhaseInputError');
    expect(output).toContain('"message":"rejected the phase input"');
    expect((error as Error).message).toContain('start an execution');
    expect(await listKeys(stack.s3Client, stack.bucket, '')).toEqual(before);
  });

  it('rejects a trigger that is neither kind of event in Plan, before anything is written', async () => {
    const before = await listKeys(stack.s3Client, stack.bucket, '');

    const result = await runPrinted({ reason: 'x', userIds: 'user_1' });

    expect(result.execution.status).toBe('FAILED');
    expect(result.error?.name).toBe('InvalidEventError');
    expect(result.output).toContain('"message":"rejected the run trigger"');
    expect(result.error?.message).toContain('reason: must be at least 3 characters');
    expect(result.error?.message).toContain('userIds: must be a list of user ids');
    // Abort ran with no run to abort: nothing to write a manifest under.
    expect(result.execution.calls).toMatchObject({ Plan: 1, Abort: 1 });
    expect(result.summary).toMatchObject({ status: 'failed', manifestKey: null });
    expect(result.output).toContain('"message":"run failed before it was planned"');
    expect(await listKeys(stack.s3Client, stack.bucket, '')).toEqual(before);
  });

  it('fails at cold start on bad configuration, naming the variable and the rule', async () => {
    const { error } = await invokeDirectly({ phase: 'plan' }, { EXPORT_CONCURRENCY: 'lots' });

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toBe(
      'Invalid configuration: EXPORT_CONCURRENCY must be a whole number in decimal digits (like 16)',
    );
  });

  it('throws the Work failure with its literal name, and Abort writes the failed manifest of that run', async () => {
    const result = await runPrinted(
      { reason: 'revoked key drill', userIds: ['user_1'] },
      { MOONKEY_API_KEY: 'sk_live_revoked' },
    );

    expect(result.execution.status).toBe('FAILED');
    expect(result.error?.name).toBe('ApiAuthError');
    expect(result.invocations.find((i) => i.phase === 'work')?.error).toBe('ApiAuthError');
    const run = result.run as NonNullable<typeof result.run>;
    const manifestKey = `handler/manifests/dt=${run.dt}/${run.snapshotId}.${run.runId}.json`;
    expect(result.summary).toMatchObject({ status: 'failed', manifestKey });
    const manifest = JSON.parse(
      (await readObjects(stack.s3Client, stack.bucket, manifestKey)).get(manifestKey) ?? '{}',
    );
    expect(manifest).toMatchObject({
      snapshot_id: run.snapshotId,
      run_id: run.runId,
      trigger: 'audit',
      reason: 'revoked key drill',
      status: 'failed',
      error: { type: 'ApiAuthError', step: 'Work' },
    });
    expect(result.output).toContain('"SnapshotCommitted":0');
    expect(result.output).not.toContain('sk_live_revoked');
  });

  it("hands a Work's unfinished users to the next Work at its hard stop, read from the invocation context and before Lambda's deadline; the snapshot is exact", async () => {
    stack.api.configure({ latencyMs: 200 });
    try {
      // One page of 50 users at two 200 ms calls at a time needs 5 s; Lambda gives each Work 2.5 s.
      let firstStep: StepRecord | undefined;
      const result = await runPrinted(
        { reason: 'deadline drill' },
        { EXPORT_CONCURRENCY: '2', EXPORT_DEADLINE_MARGIN_MS: '1000' },
        {
          workBudgetMs: 2500,
          // The step record the first Work left (Commit removes the run state with the run).
          onPhase: async (call) => {
            const tail = (call.result as { slice?: { tail: string } } | undefined)?.slice?.tail;
            if (call.state === 'Work' && tail !== undefined && firstStep === undefined)
              firstStep = await getJson<StepRecord>(stack.s3Client, stack.bucket, tail);
          },
        },
      );

      expect(result.error).toBeUndefined();
      const [first, ...rest] = result.invocations.filter((i) => i.phase === 'work');
      // It stopped a quarter of the margin before Lambda's deadline (not at it, not after it),
      // and that was time enough to close its files and save the step.
      expect(first?.msLeft).toBeGreaterThan(0);
      expect(first?.msLeft).toBeLessThanOrEqual(250);
      const out = first?.result as { slice: { cursor: string; tail: string }; done: boolean };
      expect(out.done).toBe(false);
      expect(rest.length).toBeGreaterThan(0);
      const cursor = JSON.parse(out.slice.cursor) as { kind: string; users: number; after: unknown };
      // The page was the whole table: after its unfinished users, nothing is left.
      expect(cursor).toEqual({ kind: 'handover', users: expect.any(Number), after: null });
      expect(firstStep?.pending).toHaveLength(cursor.users);
      expect(firstStep?.counts.users_scanned).toBe(50);
      expect((firstStep?.counts.users_processed ?? 0) + (firstStep?.pending.length ?? 0)).toBe(50);
      // Scanned once (by the Work that read the page), processed once each.
      expect(result.execution.output).toMatchObject({
        status: 'committed',
        counts: { users_scanned: 50, users_processed: 50, users_failed: 0 },
      });
      const visible = (await readVisibleSessions(stack.s3Client, stack.bucket, 'handler')).filter(
        (r) => r.run_id === result.run?.runId,
      );
      const truth = seeded.flatMap((id) => sessionsFor(id, BASE_TIME));
      expect(visible).toHaveLength(truth.length);
      expect(new Set(visible.map((r) => `${String(r.user_id)}/${String(r.id)}`)).size).toBe(truth.length);
    } finally {
      stack.api.configure({ latencyMs: 0 });
    }
  });
});
