/**
 * The Lambda entry point as Lambda calls it: configuration from process.env at cold start, the
 * real clients, the local stack behind them, logs on stdout.
 */

import { createHash } from 'node:crypto';
import { ConfigError, InvalidEventError, InvalidPhaseInputError } from '../../lambda/core/errors';
import { closeRuntime, handler } from '../../lambda/handlers/handler';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { captureStdout } from '../helpers/capture-stdout';
import { drivePhases } from '../helpers/drive-phases';
import { fakeContext } from '../helpers/lambda-context';
import { readObjects, readVisibleSessions } from '../helpers/snapshot-reader';
import { useProcessEnv } from '../helpers/stack-env';

const API_KEY = 'sk_live_handler_secret_987';
const BASE_TIME = 1_764_115_200;
let stack: LocalStack;
let restoreEnv: () => void = () => {};
let seeded: string[] = [];

beforeAll(async () => {
  stack = await startLocalStack({ api: { apiKey: API_KEY, baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, 'handler-users');
  seeded = await seedUsers(stack.dynamodbClient, 'handler-users', 50);
  restoreEnv = useProcessEnv({
    ...stack.env,
    USERS_TABLE_NAME: 'handler-users',
    EXPORT_PREFIX: 'handler',
    METRICS_ENABLED: 'true',
    LOG_LEVEL: 'INFO',
  });
}, 120_000);

afterEach(async () => {
  await closeRuntime();
});

afterAll(async () => {
  restoreEnv();
  await stack?.stop();
});

const scheduledEvent = {
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  time: '2026-11-20T02:00:00Z',
  detail: {},
};

describe('handler', () => {
  it('runs the phases of a scheduled snapshot to a committed manifest, logging JSON and EMF metrics without the key', async () => {
    const {
      result: driven,
      error,
      output,
    } = await captureStdout(() =>
      drivePhases((payload) => handler(payload, fakeContext()), scheduledEvent, {
        name: 'scheduled-20261120T020000Z',
        startTime: '2026-11-20T02:00:03.250Z',
      }),
    );

    expect(error).toBeUndefined();
    expect(driven?.failed).toBeUndefined();
    // Derived from the execution: a retried Plan names the same run.
    const runId = `r20261120T020003250Z-${createHash('sha256').update('scheduled-20261120T020000Z').digest('hex').slice(0, 6)}`;
    expect(driven?.plan?.run).toEqual({
      snapshotId: 'scheduled-20261120T020000Z',
      runId,
      dt: '2026-11-20',
      planKey: `handler/runs/dt=2026-11-20/scheduled-20261120T020000Z/${runId}/plan.json`,
      dryRun: false,
    });
    expect(driven?.result).toMatchObject({
      snapshotId: 'scheduled-20261120T020000Z',
      runId,
      status: 'committed',
      manifestKey: `handler/manifests/dt=2026-11-20/scheduled-20261120T020000Z.${runId}.json`,
      counts: { users_processed: 50, users_failed: 0 },
    });
    const lines = output
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as Record<string, unknown>);
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
    expect(output).not.toContain(API_KEY);
  });

  it("stops a Work at a page boundary once Lambda's remaining time falls below the margin, and the next Work continues", async () => {
    const restore = useProcessEnv({ EXPORT_SCAN_PAGE_SIZE: '10', EXPORT_DEADLINE_MARGIN_MS: '60000' });
    try {
      const calls: { phase: string; done?: boolean }[] = [];
      // 60.1 s left with a 60 s margin: each Work may start pages for 100 ms only, and every
      // call takes 50 ms, so no Work gets through the five pages.
      stack.api.configure({ latencyMs: 50 });
      const { result: driven } = await captureStdout(() =>
        drivePhases(
          async (payload) => {
            const out = await handler(payload, fakeContext(60_100));
            calls.push({ phase: String(payload.phase), done: (out as { done?: boolean }).done });
            return out;
          },
          { ...scheduledEvent, time: '2026-11-21T02:00:00Z' },
        ),
      );

      expect(driven?.failed).toBeUndefined();
      expect(driven?.result).toMatchObject({ status: 'committed', counts: { users_processed: 50 } });
      expect(driven?.workCalls).toBeGreaterThan(1);
      expect(calls.filter((c) => c.phase === 'work' && c.done === false)).toHaveLength(
        (driven?.workCalls ?? 0) - 1,
      );
      const run = driven?.plan?.run as { runId: string };
      const visible = (await readVisibleSessions(stack.s3Client, stack.bucket, 'handler')).filter(
        (r) => r.run_id === run.runId,
      );
      expect(new Set(visible.map((r) => r.id)).size).toBe(visible.length);
      // Every session once, none lost at a continuation, none twice.
      expect(visible.length).toBe(seeded.flatMap((id) => sessionsFor(id, BASE_TIME)).length);
    } finally {
      stack.api.configure({ latencyMs: 0 });
      restore();
    }
  });

  it('refuses an input that is not a phase of the state machine, naming the problem, and writes nothing', async () => {
    const before = await listKeys(stack.s3Client, stack.bucket, '');

    const { error, output } = await captureStdout(() => handler(scheduledEvent, fakeContext()));

    expect(error).toBeInstanceOf(InvalidPhaseInputError);
    expect((error as Error).name).toBe('InvalidPhaseInputError');
    expect(output).toContain('"message":"rejected the phase input"');
    expect((error as Error).message).toContain('start an execution');
    expect(await listKeys(stack.s3Client, stack.bucket, '')).toEqual(before);
  });

  it('rejects a trigger that is neither kind of event in Plan, before anything is written', async () => {
    const before = await listKeys(stack.s3Client, stack.bucket, '');

    const { error, output } = await captureStdout(() =>
      handler(
        {
          phase: 'plan',
          trigger: { reason: 'x', userIds: 'user_1' },
          execution: { name: 'e', startTime: new Date().toISOString() },
        },
        fakeContext(),
      ),
    );

    expect(error).toBeInstanceOf(InvalidEventError);
    expect(output).toContain('"message":"rejected the run trigger"');
    expect((error as Error).message).toContain('reason: must be at least 3 characters');
    expect((error as Error).message).toContain('userIds: must be a list of user ids');
    expect(await listKeys(stack.s3Client, stack.bucket, '')).toEqual(before);
  });

  it('fails at cold start on bad configuration, naming the variable and the rule', async () => {
    const restore = useProcessEnv({ EXPORT_CONCURRENCY: 'lots' });
    try {
      const { error } = await captureStdout(() => handler({ phase: 'plan' }, fakeContext()));

      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toBe(
        'Invalid configuration: EXPORT_CONCURRENCY must be a whole number in decimal digits (like 16)',
      );
    } finally {
      restore();
    }
  });

  it('throws the Work failure with its literal name, and Abort writes the failed manifest of that run', async () => {
    const restore = useProcessEnv({ MOONKEY_API_KEY: 'sk_live_revoked' });
    try {
      const { result: driven, output } = await captureStdout(() =>
        drivePhases((payload) => handler(payload, fakeContext()), {
          reason: 'revoked key drill',
          userIds: ['user_1'],
        }),
      );

      expect(driven?.failed?.step).toBe('Work');
      expect(driven?.failed?.error.name).toBe('ApiAuthError');
      const run = driven?.plan?.run as { snapshotId: string; runId: string; dt: string };
      const manifestKey = `handler/manifests/dt=${run.dt}/${run.snapshotId}.${run.runId}.json`;
      expect(driven?.result).toMatchObject({ status: 'failed', manifestKey });
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
      expect(output).toContain('"SnapshotCommitted":0');
      expect(output).not.toContain('sk_live_revoked');
    } finally {
      restore();
    }
  });

  it("hands a Work's unfinished users to the next Work at its hard stop, read from the invocation context and before Lambda's deadline; the snapshot is exact", async () => {
    stack.api.configure({ latencyMs: 200 });
    const restore = useProcessEnv({ EXPORT_CONCURRENCY: '2', EXPORT_DEADLINE_MARGIN_MS: '1000' });
    try {
      const plan = (await handler(
        {
          phase: 'plan',
          trigger: { reason: 'deadline drill' },
          execution: { name: 'deadline-drill', startTime: new Date().toISOString() },
        },
        fakeContext(),
      )) as unknown as { run: { runId: string } };
      // One page of 50 users at two 200 ms calls at a time needs 5 s; Lambda gives this Work 2.5 s.
      const context = fakeContext(2500, 'dead11e0-0000-4000-8000-000000000003');
      const { result, error } = await captureStdout(() =>
        handler(
          {
            phase: 'work',
            run: plan.run,
            slice: { segment: 0, totalSegments: 1, cursor: null, step: 0, tail: null },
          },
          context,
        ),
      );
      const timeLeft = context.getRemainingTimeInMillis();

      expect(error).toBeUndefined();
      // It stopped a quarter of the margin before Lambda's deadline (not at it, not after it),
      // and that was time enough to close its files and save the step.
      expect(timeLeft).toBeGreaterThan(0);
      expect(timeLeft).toBeLessThanOrEqual(250);
      const first = result as unknown as { slice: { cursor: string; tail: string }; done: boolean };
      expect(first.done).toBe(false);
      const cursor = JSON.parse(first.slice.cursor) as { kind: string; users: number; after: unknown };
      // The page was the whole table: after its unfinished users, nothing is left.
      expect(cursor).toEqual({ kind: 'handover', users: expect.any(Number), after: null });
      const step = JSON.parse(
        (await readObjects(stack.s3Client, stack.bucket, first.slice.tail)).get(first.slice.tail) ?? '{}',
      ) as { pending: string[]; counts: { users_scanned: number; users_processed: number } };
      expect(step.pending).toHaveLength(cursor.users);
      expect(step.counts.users_scanned).toBe(50);
      expect(step.counts.users_processed + step.pending.length).toBe(50);

      const { result: driven } = await captureStdout(async () => {
        let out = first as unknown as { slice: Record<string, unknown>; done: boolean };
        while (!out.done) {
          out = (await handler({ phase: 'work', run: plan.run, slice: out.slice }, fakeContext())) as never;
        }
        return handler({ phase: 'commit', run: plan.run, tails: [out.slice.tail] }, fakeContext());
      });

      // Scanned once (by the Work that read the page), processed once each.
      expect(driven).toMatchObject({
        status: 'committed',
        counts: { users_scanned: 50, users_processed: 50, users_failed: 0 },
      });
      const visible = (await readVisibleSessions(stack.s3Client, stack.bucket, 'handler')).filter(
        (r) => r.run_id === plan.run.runId,
      );
      const truth = seeded.flatMap((id) => sessionsFor(id, BASE_TIME));
      expect(visible).toHaveLength(truth.length);
      expect(new Set(visible.map((r) => `${String(r.user_id)}/${String(r.id)}`)).size).toBe(truth.length);
    } finally {
      restore();
      stack.api.configure({ latencyMs: 0 });
    }
  });
});
