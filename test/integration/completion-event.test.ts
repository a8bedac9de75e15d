/**
 * The completion event, through the deployed state machine's definition on the local runner
 * with the real handler against the local stack: the PutEvents Task runs, and the runner delivers
 * its entry as EventBridge would (detail as JSON, the execution's ARNs in `resources`). Every
 * event seen here is held to the shipped JSON Schema (schemas/snapshot-event.schema.json).
 */
import {
  SERVICE_NAME,
  SNAPSHOT_COMMITTED_EVENT,
  SNAPSHOT_EVENT_SOURCE,
  SNAPSHOT_FAILED_EVENT,
  STATE_MACHINE_METRICS,
} from '../../lambda/core/facts';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import type { PublishedEvent } from '../../local/state-machine-runner';
import { runViaStateMachine } from '../helpers/run-via-state-machine';
import { snapshotEventProblems } from '../helpers/snapshot-event-schema';

const BASE_TIME = 1_764_115_200;
const TABLE = 'completion-event-users';
const USERS = 30;

let stack: LocalStack;
let prefixCounter = 0;

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, TABLE);
  await seedUsers(stack.dynamodbClient, TABLE, USERS);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const env = () => ({
  ...stack.env,
  USERS_TABLE_NAME: TABLE,
  EXPORT_PREFIX: `events${++prefixCounter}`,
  LOG_LEVEL: 'ERROR',
  METRICS_ENABLED: 'false',
});
const scheduled = (day: number) => ({
  'detail-type': 'Scheduled Event',
  source: 'aws.scheduler',
  time: `2026-11-${String(day).padStart(2, '0')}T02:00:00Z`,
  detail: {},
});

function expectValid(events: readonly PublishedEvent[]): void {
  for (const { event } of events) expect(snapshotEventProblems(event)).toEqual([]);
}

describe('the completion event', () => {
  it('announces a committed run once, on the default bus, with the manifest the run wrote', async () => {
    // Act
    const run = await runViaStateMachine(env(), scheduled(1), { workBudgetMs: 900_000 });
    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.manifest?.status).toBe('committed');
    expect(run.execution.events).toHaveLength(1);
    const [published] = run.execution.events;
    expect(published?.eventBusName).toBe('arn:aws:events:local-1:000000000000:event-bus/default');
    expect(published?.event).toMatchObject({
      source: SNAPSHOT_EVENT_SOURCE,
      'detail-type': SNAPSHOT_COMMITTED_EVENT,
      resources: [expect.stringContaining(':execution:'), expect.stringContaining(':stateMachine:')],
      detail: {
        snapshot_id: run.manifest?.snapshot_id,
        run_id: run.manifest?.run_id,
        dt: '2026-11-01',
        trigger: 'scheduled',
        status: 'committed',
        manifest_uri: `s3://${stack.bucket}/${run.manifestKey}`,
        counts: run.manifest?.counts,
        files: run.manifest?.files.sessions.length,
        views: { sessions: 'sessions', changes: 'session_changes', manifests: 'manifests' },
      },
    });
    expect(run.manifest?.counts.users_processed).toBe(USERS);
    expect(run.execution.metricData).toEqual([]);
    expectValid(run.execution.events);
  });

  it('announces a failed run after Abort wrote its failed manifest, with the step and error type', async () => {
    // Act: Commit fails with an error the definition does not retry.
    const run = await runViaStateMachine(env(), scheduled(2), {
      workBudgetMs: 900_000,
      faults: (call) =>
        call.state === 'Commit' ? { error: 'Injected.CommitFailed', at: 'before' } : undefined,
    });
    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.manifest?.status).toBe('failed');
    expect(run.execution.events.map((e) => e.event['detail-type'])).toEqual([SNAPSHOT_FAILED_EVENT]);
    expect(run.execution.events[0]?.event.detail).toMatchObject({
      snapshot_id: run.manifest?.snapshot_id,
      run_id: run.manifest?.run_id,
      status: 'failed',
      manifest_uri: `s3://${stack.bucket}/${run.manifestKey}`,
      failure: { step: 'Commit', error_type: 'Injected.CommitFailed' },
    });
    // The event follows the Abort (the failed manifest is written when the event goes out).
    const states = run.execution.states;
    expect(states.indexOf('PublishFailed')).toBeGreaterThan(states.lastIndexOf('Abort'));
    expectValid(run.execution.events);
  });

  it('announces a snapshot Abort found committed (Commit committed, its response was lost) as committed', async () => {
    // Act
    const run = await runViaStateMachine(env(), scheduled(7), {
      workBudgetMs: 900_000,
      faults: (call) =>
        call.state === 'Commit' ? { error: 'Injected.ResponseLost', at: 'after' } : undefined,
    });
    // Assess: the execution failed, yet readers see the snapshot, and so does the event.
    expect(run.execution.status).toBe('FAILED');
    expect(run.manifest?.status).toBe('committed');
    expect(run.execution.events.map((e) => e.event['detail-type'])).toEqual([SNAPSHOT_COMMITTED_EVENT]);
    expect(run.execution.events[0]?.event.detail).toMatchObject({
      run_id: run.manifest?.run_id,
      manifest_uri: `s3://${stack.bucket}/${run.manifestKey}`,
    });
    expectValid(run.execution.events);
  });

  it('announces a run that failed in Plan with no snapshot, keyed by its execution', async () => {
    // Act
    const run = await runViaStateMachine(env(), scheduled(3), {
      faults: (call) => (call.state === 'Plan' ? { error: 'Injected.PlanFailed', at: 'before' } : undefined),
    });
    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.execution.events).toHaveLength(1);
    expect(run.execution.events[0]?.event.detail).toMatchObject({
      snapshot_id: null,
      run_id: null,
      manifest_uri: null,
      execution_arn: expect.stringMatching(/:execution:[^:]+:scheduled-/),
      failure: { step: 'Plan', error_type: 'Injected.PlanFailed' },
    });
    expectValid(run.execution.events);
  });

  it('publishes nothing for a run that did not finish: Abort itself failed, so no failed manifest exists', async () => {
    // Act
    const run = await runViaStateMachine(env(), scheduled(4), {
      workBudgetMs: 900_000,
      faults: (call) =>
        call.state === 'Commit'
          ? { error: 'Injected.CommitFailed', at: 'before' }
          : call.state === 'Abort'
            ? { error: 'Injected.AbortFailed', at: 'before' }
            : undefined,
    });
    // Assess
    expect(run.execution.status).toBe('FAILED');
    expect(run.manifest).toBeUndefined();
    expect(run.execution.events).toEqual([]);
  });

  it('publishes nothing for a dry run, which commits nothing', async () => {
    // Act
    const run = await runViaStateMachine(
      env(),
      { reason: 'dry run', dryRun: true },
      { workBudgetMs: 900_000 },
    );
    // Assess
    expect(run.execution.status).toBe('SUCCEEDED');
    expect((run.execution.output as { status: string }).status).toBe('dry_run');
    expect(run.execution.events).toEqual([]);
  });

  it('leaves the snapshot committed when publishing keeps failing, and counts the lost event', async () => {
    // Act: every PutEvents attempt fails as a non-zero FailedEntryCount would.
    const run = await runViaStateMachine(env(), scheduled(5), {
      workBudgetMs: 900_000,
      faults: (call) =>
        call.state === 'PublishCommitted' ? { error: 'EventBridge.FailedEntry', at: 'before' } : undefined,
    });
    // Assess: tried once and retried four times, then given up without touching the run.
    expect(run.execution.calls.PublishCommitted).toBe(5);
    expect(run.execution.status).toBe('SUCCEEDED');
    expect(run.manifest?.status).toBe('committed');
    expect(run.execution.events).toEqual([]);
    expect(run.execution.output).toMatchObject({
      status: 'committed',
      manifestKey: run.manifestKey,
      eventError: { Error: 'EventBridge.FailedEntry' },
    });
    expect(run.execution.metricData).toEqual([
      {
        state: 'PublishCommittedUnpublished',
        namespace: 'MoonKeySessionExport',
        metricData: [
          {
            MetricName: STATE_MACHINE_METRICS.completionEventUnpublished,
            Dimensions: [{ Name: 'service', Value: SERVICE_NAME }],
            Value: 1,
            Unit: 'Count',
          },
        ],
      },
    ]);
  });

  it('still ends a failed run as failed when its event cannot be published either', async () => {
    // Act
    const run = await runViaStateMachine(env(), scheduled(6), {
      workBudgetMs: 900_000,
      faults: (call) =>
        call.state === 'Commit'
          ? { error: 'Injected.CommitFailed', at: 'before' }
          : call.state === 'PublishFailed'
            ? { error: 'EventBridge.FailedEntry', at: 'before' }
            : undefined,
    });
    // Assess: the run's own error, not the publish error, is the execution's.
    expect(run.execution.status).toBe('FAILED');
    expect(run.execution.error?.Error).toBe('Injected.CommitFailed');
    expect(run.manifest?.status).toBe('failed');
    expect(run.execution.metricData.map((m) => m.metricData[0]?.MetricName)).toEqual([
      STATE_MACHINE_METRICS.completionEventUnpublished,
    ]);
  });
});
