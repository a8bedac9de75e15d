/**
 * `npx tsx scripts/bench-state-machine.ts [--users 200000] [--segments 8] [--budget-ms 5000]
 *   [--concurrency 64] [--latency-ms 20]`
 *
 * One scheduled run through the state machine's own definition (the local runner) with the real
 * phase handlers on the local stack, every Work invocation given a compressed Lambda deadline.
 * Prints users/s, Work invocations (per segment) and whether the committed snapshot equals the
 * fake API's truth exactly once. Numbers are for reading, not asserting (docs/performance.md "Scale").
 */
import { parseArgs } from 'node:util';
import { closeRuntime, handler } from '../lambda/handlers/handler';
import { sessionsFor } from '../local/fake-sessions';
import { startLocalStack } from '../local/local-stack';
import { createUsersTable, seedUsers } from '../local/seed-users';
import { loadStateMachineDefinitions } from '../local/state-machine-definitions';
import { LocalStepFunctions } from '../local/state-machine-runner';
import { readVisibleSessions } from '../test/helpers/snapshot-reader';

const BASE_TIME = 1_764_115_200;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '200000' },
      segments: { type: 'string', default: '8' },
      'budget-ms': { type: 'string', default: '5000' },
      concurrency: { type: 'string', default: '64' },
      'latency-ms': { type: 'string', default: '20' },
    },
  });
  const users = Number(values.users);
  const budgetMs = Number(values['budget-ms']);
  const stack = await startLocalStack({
    api: { baseTime: BASE_TIME, latencyMs: Number(values['latency-ms']), trackUsers: false },
  });
  try {
    const table = 'bench-sfn-users';
    await createUsersTable(stack.dynamodbClient, table);
    const ids = await seedUsers(stack.dynamodbClient, table, users);
    Object.assign(process.env, stack.env, {
      USERS_TABLE_NAME: table,
      EXPORT_PREFIX: 'bench',
      EXPORT_SCAN_SEGMENTS: values.segments,
      EXPORT_CONCURRENCY: values.concurrency,
      // Stop taking scan pages 40% of the budget before the deadline; pages of 250 users fit.
      EXPORT_DEADLINE_MARGIN_MS: String(Math.round(budgetMs * 0.4)),
      EXPORT_SCAN_PAGE_SIZE: '250',
      LOG_LEVEL: 'ERROR',
      METRICS_ENABLED: 'false',
    });
    const definitions = await loadStateMachineDefinitions();
    const perSegment = new Map<number, number>();
    const sfn = new LocalStepFunctions(definitions, handler, {
      workBudgetMs: budgetMs,
      onPhase: (call) => {
        if (call.state !== 'Work') return;
        const { segment } = (call.payload as { slice: { segment: number } }).slice;
        perSegment.set(segment, (perSegment.get(segment) ?? 0) + 1);
      },
    });
    const event = {
      'detail-type': 'Scheduled Event',
      source: 'aws.scheduler',
      time: '2026-11-27T02:00:00Z',
      detail: {},
    };
    const started = Date.now();
    const execution = await sfn.startExecution('scheduled-20261127T020000Z', event);
    const seconds = (Date.now() - started) / 1000;
    if (execution.status !== 'SUCCEEDED')
      throw new Error(`run ${execution.status}: ${JSON.stringify(execution.error)}`);

    const visible = await readVisibleSessions(stack.s3Client, stack.bucket, 'bench');
    const truth = new Map(
      ids.flatMap((id) => sessionsFor(id, BASE_TIME)).map((s) => [`${s.user_id}/${s.id}`, s]),
    );
    const seen = new Set<string>();
    let duplicates = 0;
    let unknown = 0;
    for (const record of visible) {
      const key = `${String(record.user_id)}/${String(record.id)}`;
      if (seen.has(key)) duplicates++;
      seen.add(key);
      if (!truth.has(key)) unknown++;
    }
    const missing = [...truth.keys()].filter((k) => !seen.has(k)).length;
    console.log(
      JSON.stringify(
        {
          users,
          segments: Number(values.segments),
          workBudgetMs: budgetMs,
          concurrency: Number(values.concurrency),
          apiLatencyMs: Number(values['latency-ms']),
          seconds: Number(seconds.toFixed(1)),
          usersPerSecond: Math.round(users / seconds),
          invocations: execution.calls,
          workPerSegment: Object.fromEntries([...perSegment].sort(([a], [b]) => a - b)),
          sessions: { truth: truth.size, visible: visible.length, missing, duplicates, unknown },
          verified: missing === 0 && duplicates === 0 && unknown === 0 && visible.length === truth.size,
        },
        null,
        2,
      ),
    );
  } finally {
    await closeRuntime();
    await stack.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exitCode = 1;
});
