import {
  InvalidEventError,
  InvalidPhaseInputError,
  RunAbandonedError,
  WorkStalledError,
} from '../../../lambda/core/errors';
import {
  closeRuntime,
  createPhaseHandler,
  getRuntime,
  handler,
  type RunSummary,
} from '../../../lambda/handlers/handler';
import type { JobRuntime } from '../../../lambda/handlers/job-runtime';
import type { PlanOutput, WorkOutput } from '../../../lambda/run/phase-payloads';
import { emptyCounts, type Manifest } from '../../../lambda/snapshot/manifest';
import { sessionsFor } from '../../../local/fake-sessions';
import { gate } from '../../helpers/gate';
import { type MemoryContext, memoryContext, moonkeyAnswer } from '../../helpers/memory-context';
import { MemoryUsersTable } from '../../helpers/memory-dynamodb';
import { scheduledEvent } from '../../helpers/scheduled-event';

type Runtime = MemoryContext & JobRuntime & { closed: number };

/** A runtime on in-memory parts, as the container's would be built from its environment. */
function memoryRuntime(
  env: Record<string, string> = {},
  parts: Parameters<typeof memoryContext>[1] = {},
): Runtime {
  const runtime: Runtime = {
    ...memoryContext({ EXPORT_SCAN_SEGMENTS: '1', ...env }, parts),
    closed: 0,
    async close() {
      runtime.closed++;
    },
  };
  return runtime;
}

const lambdaContext = (remainingMs = 600_000, awsRequestId = '5f1c2a7e-0b3d-4e8f-9a6b-1c2d3e4f5a6b') => ({
  awsRequestId,
  getRemainingTimeInMillis: () => remainingMs,
});

const startTime = '2026-12-01T02:00:04.250Z';
const execution = (name = 'scheduled-20261201T020000Z-a1') => ({ name, startTime });
const planInput = (trigger: unknown, name?: string) => ({
  phase: 'plan',
  trigger,
  execution: execution(name),
});
const audit = (userIds?: string[]) => ({ reason: 'support ticket 1234', ...(userIds ? { userIds } : {}) });
const ids = (n: number) => Array.from({ length: n }, (_, i) => `user_${String(i).padStart(5, '0')}`);

const firstSlice = (plan: PlanOutput) => ({
  phase: 'work',
  run: plan.run,
  slice: { ...plan.segments[0], cursor: null, step: 0, tail: null },
});

/** The first log line with `message`: its level and its fields. */
function logged(rt: Runtime, message: string): Record<string, unknown> | undefined {
  const line = rt.logger.lines
    .map((l) => JSON.parse(l) as { level: string; message: string; extra: Record<string, unknown>[] })
    .find((l) => l.message === message);
  return line && { level: line.level, ...line.extra[0] };
}

const manifestAt = (rt: Runtime, key: string) => JSON.parse(rt.memory.objects.get(key) as string) as Manifest;

afterEach(() => {
  jest.restoreAllMocks();
});

describe('createPhaseHandler: the phase input', () => {
  it.each([
    ['no object at all', 'run please', 'input: '],
    ['an unknown phase', { phase: 'export' }, 'phase: '],
    ['a Work without its slice', { phase: 'work', run: {} }, 'run.snapshotId: '],
  ])('refuses %s, naming each problem, and logs it with the request id', async (_label, event, named) => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);

    const error = await run(event, lambdaContext(600_000, 'req-1')).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(InvalidPhaseInputError);
    expect((error as Error).message).toMatch(
      /^Rejected the phase input: this function runs the phases of the snapshot state machine \(start an execution instead of invoking it\)\. /,
    );
    const issues = (logged(rt, 'rejected the phase input')?.issues ?? []) as string[];
    expect(issues[0]?.startsWith(named)).toBe(true);
    expect(logged(rt, 'rejected the phase input')).toMatchObject({ level: 'ERROR', requestId: 'req-1' });
    expect(((logged(rt, 'rejected the phase input')?.issues ?? []) as string[]).join('; ')).toBe(
      (error as Error).message.replace(/^.*\(start an execution instead of invoking it\)\. /, ''),
    );
    expect(rt.memory.sent).toEqual([]);
  });

  it('names every problem of one input, each with its path', async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);

    const error = await run(
      {
        phase: 'commit',
        run: { snapshotId: 's', runId: 'r', dt: 'yesterday', planKey: 'k', dryRun: false },
        tails: [],
      },
      lambdaContext(),
    ).catch((e: unknown) => e);

    expect((error as Error).message).toMatch(/run\.dt: [^;]+; tails: /);
  });

  it('asks for the runtime at each invocation', async () => {
    const rt = memoryRuntime();
    const source = jest.fn(async () => rt);
    const run = createPhaseHandler(source);

    await run('x', lambdaContext()).catch(() => undefined);
    await run('y', lambdaContext()).catch(() => undefined);

    expect(source).toHaveBeenCalledTimes(2);
  });
});

describe('createPhaseHandler: plan', () => {
  it("plans the scheduled slot at the execution's start time and stores the plan", async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);

    const out = (await run(planInput(scheduledEvent('2026-12-01T02:00:00Z')), lambdaContext())) as PlanOutput;

    expect(out.run).toMatchObject({
      snapshotId: 'scheduled-20261201T020000Z',
      dt: '2026-12-01',
      dryRun: false,
    });
    expect(out.run.runId).toMatch(/^r20261201T020004250Z-[0-9a-f]{6}$/);
    expect(out.segments).toEqual([{ segment: 0, totalSegments: 1 }]);
    expect(JSON.parse(rt.memory.objects.get(out.run.planKey) as string)).toMatchObject({
      plan: { runId: out.run.runId, startedAt: startTime },
    });
  });

  it('names the same run for a retried Plan of one execution, another run for another execution', async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);
    const event = scheduledEvent('2026-12-01T02:00:00Z');

    const first = (await run(planInput(event, 'exec-one'), lambdaContext())) as PlanOutput;
    const retried = (await run(planInput(event, 'exec-one'), lambdaContext())) as PlanOutput;
    const other = (await run(planInput(event, 'exec-two'), lambdaContext())) as PlanOutput;

    expect(retried.run.runId).toBe(first.run.runId);
    expect(other.run.runId).not.toBe(first.run.runId);
  });

  it("names an audit's snapshot after the execution", async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);

    const out = (await run(
      planInput(audit(['alice']), 'audit-Ticket-7731xyz'),
      lambdaContext(),
    )) as PlanOutput;

    expect(out.run.snapshotId).toBe('audit-20261201T020004Z-t7731xyz');
  });

  it('refuses a trigger that is neither a scheduled event nor an audit request, and logs why', async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);

    const error = await run(planInput({ reason: 'x' }, 'exec-bad'), lambdaContext()).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(InvalidEventError);
    expect(logged(rt, 'rejected the run trigger')).toMatchObject({
      level: 'ERROR',
      invocationId: 'exec-bad',
      issues: (error as InvalidEventError).issues,
    });
    expect((error as InvalidEventError).issues.length).toBeGreaterThan(0);
    expect(rt.memory.objects.size).toBe(0);
  });
});

describe('createPhaseHandler: work and its deadline', () => {
  const T = Date.parse('2026-12-01T02:05:00.000Z');

  it('starts no new page once only the margin is left, and goes on with a millisecond more', async () => {
    const margin = 40_000;
    const rt = memoryRuntime({ EXPORT_DEADLINE_MARGIN_MS: String(margin) });
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(planInput(audit(ids(1_200))), lambdaContext())) as PlanOutput;
    jest.spyOn(Date, 'now').mockReturnValue(T);

    const atMargin = (await run(firstSlice(plan), lambdaContext(margin, 'req-a'))) as WorkOutput;
    const justBefore = (await run(firstSlice(plan), lambdaContext(margin + 1, 'req-b'))) as WorkOutput;

    // A Work always takes one chunk of a listed audit (500 users); the deadline decides the rest.
    expect(atMargin).toMatchObject({ done: false, slice: { step: 1 } });
    expect(justBefore).toMatchObject({ done: true, slice: { step: 1, cursor: null } });
  });

  it('stops its calls at the deadline minus a quarter of the margin, and says how long it had', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(3);
    const held = gate();
    // No page ever arrives: the Work can only stop at its hard stop.
    table.latency = () => held.promise;
    const rt: Runtime = { ...memoryRuntime({ EXPORT_DEADLINE_MARGIN_MS: '4000' }), dynamodb: table.client };
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(
      planInput(scheduledEvent('2026-12-01T02:00:00Z')),
      lambdaContext(),
    )) as PlanOutput;
    jest.spyOn(Date, 'now').mockReturnValue(T);

    // Deadline T + 1100 ms; hard stop at T + 1100 - 4000 / 4 = T + 100 ms.
    const error = await run(firstSlice(plan), lambdaContext(1_100)).catch((e: unknown) => e);
    held.open();

    expect(error).toBeInstanceOf(WorkStalledError);
    expect((error as Error).message).toContain("in this Work's whole invocation (100 ms to its hard stop)");
    expect(table.scans).toHaveLength(1);
  });

  it('stops a Work of a run that Abort already gave up, calling nobody', async () => {
    const called: string[] = [];
    const rt = memoryRuntime(
      {},
      {
        fetchSessions: async (userId) => {
          called.push(userId);
          return moonkeyAnswer({ sessions: [] });
        },
      },
    );
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(planInput(audit(ids(3))), lambdaContext())) as PlanOutput;
    // Another segment failed: the state machine's Catch ran Abort while this Work was queued.
    await run(
      {
        phase: 'abort',
        run: plan.run,
        failedStep: 'Work',
        error: { Error: 'ScanUsersError', Cause: 'gone' },
      },
      lambdaContext(),
    );

    await expect(run(firstSlice(plan), lambdaContext())).rejects.toThrow(RunAbandonedError);
    expect(called).toEqual([]);
  });

  it("names the step's state and files after the request id, and hands the next Work its place", async () => {
    const rt = memoryRuntime(
      {},
      { fetchSessions: async (userId) => moonkeyAnswer({ sessions: sessionsFor(userId, 1_764_115_200) }) },
    );
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(planInput(audit(ids(20))), lambdaContext())) as PlanOutput;

    const out = (await run(firstSlice(plan), lambdaContext(600_000, 'ab-cd-ef-12-34-56-78'))) as WorkOutput;

    expect(out.run).toEqual(plan.run);
    expect(out.slice.tail).toContain('abcdef123456');
    expect(JSON.parse(rt.memory.objects.get(out.slice.tail as string) as string)).toMatchObject({
      segment: 0,
      step: 0,
    });
  });
});

describe('createPhaseHandler: commit', () => {
  it('commits the run and returns its summary, manifest and counts as S3 holds them', async () => {
    const rt = memoryRuntime(
      {},
      { fetchSessions: async (userId) => moonkeyAnswer({ sessions: sessionsFor(userId, 1_764_115_200) }) },
    );
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(planInput(audit(ids(20))), lambdaContext())) as PlanOutput;
    const work = (await run(firstSlice(plan), lambdaContext())) as WorkOutput;

    const summary = (await run(
      { phase: 'commit', run: plan.run, tails: [work.slice.tail] },
      lambdaContext(),
    )) as RunSummary;

    const manifest = manifestAt(rt, summary.manifestKey as string);
    expect(summary).toEqual({
      snapshotId: plan.run.snapshotId,
      runId: plan.run.runId,
      status: 'committed',
      manifestKey: expect.stringContaining(plan.run.snapshotId),
      manifestUri: `s3://exports/${summary.manifestKey}`,
      dt: '2026-12-01',
      trigger: 'audit',
      counts: manifest.counts,
      files: manifest.files.sessions.length,
      failedStep: null,
      errorType: null,
    });
    expect(summary.counts.users_processed).toBe(20);
    expect(summary.files).toBeGreaterThan(0);
  });
  it('returns no manifest for a dry run, which leaves nothing behind', async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(
      planInput({ ...audit(['alice', 'bob']), dryRun: true }),
      lambdaContext(),
    )) as PlanOutput;
    const work = (await run(firstSlice(plan), lambdaContext())) as WorkOutput;

    const summary = (await run(
      { phase: 'commit', run: plan.run, tails: [work.slice.tail] },
      lambdaContext(),
    )) as RunSummary;

    expect(summary).toMatchObject({ status: 'dry_run', manifestKey: null, manifestUri: null, files: 0 });
    expect(rt.memory.objects.size).toBe(0);
  });
});

describe('createPhaseHandler: abort', () => {
  const lambdaError = (errorType: string, errorMessage: string) => ({
    Error: errorType,
    Cause: JSON.stringify({ errorType, errorMessage, trace: [] }),
  });

  it('writes the failed manifest of a planned run and returns which step failed and why', async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);
    const plan = (await run(planInput(audit(['alice'])), lambdaContext())) as PlanOutput;

    const summary = (await run(
      {
        phase: 'abort',
        run: plan.run,
        failedStep: 'Work',
        error: lambdaError('ScanUsersError', 'the table went away'),
      },
      lambdaContext(),
    )) as RunSummary;

    expect(summary).toMatchObject({
      snapshotId: plan.run.snapshotId,
      runId: plan.run.runId,
      status: 'failed',
      manifestUri: `s3://exports/${summary.manifestKey}`,
      failedStep: 'Work',
      errorType: 'ScanUsersError',
    });
    expect(manifestAt(rt, summary.manifestKey as string)).toMatchObject({
      status: 'failed',
      error: { step: 'Work', type: 'ScanUsersError', message: 'the table went away' },
    });
  });

  it('reports a run whose Plan failed without writing anything, and logs the error', async () => {
    const rt = memoryRuntime();
    const run = createPhaseHandler(async () => rt);

    const summary = await run(
      {
        phase: 'abort',
        failedStep: 'Plan',
        error: lambdaError('InvalidEventError', 'Rejected the scheduled event'),
      },
      lambdaContext(),
    );

    expect(summary).toEqual({
      snapshotId: null,
      runId: null,
      status: 'failed',
      manifestKey: null,
      manifestUri: null,
      dt: null,
      trigger: null,
      counts: emptyCounts(),
      files: 0,
      failedStep: 'Plan',
      errorType: 'InvalidEventError',
    });
    expect(rt.memory.sent).toEqual([]);
    expect(logged(rt, 'run failed before it was planned')).toMatchObject({
      level: 'ERROR',
      failedStep: 'Plan',
      error: { type: 'InvalidEventError', message: 'Rejected the scheduled event' },
    });
  });
});

describe('handler: the container runtime', () => {
  const saved = { ...process.env };
  beforeEach(() => {
    process.env.USERS_TABLE_NAME = 'users';
    process.env.EXPORT_BUCKET_NAME = 'exports';
    process.env.MOONKEY_API_KEY = 'test-key';
    process.env.AWS_REGION = 'eu-west-1';
  });
  afterEach(async () => {
    await closeRuntime();
    process.env = { ...saved };
  });

  it("builds the runtime from the function's environment once and shares it until closed", async () => {
    const first = await getRuntime();
    const again = await getRuntime();
    await closeRuntime();
    process.env.EXPORT_BUCKET_NAME = 'other-exports';
    const next = await getRuntime();

    expect(first.config).toMatchObject({ usersTableName: 'users', bucket: 'exports' });
    expect(again).toBe(first);
    expect(next).not.toBe(first);
    expect(next.config.bucket).toBe('other-exports');
  });

  it('runs on the container runtime: refuses a direct invocation', async () => {
    await expect(handler({ userIds: ['alice'] }, lambdaContext())).rejects.toThrow(InvalidPhaseInputError);
  });
});
