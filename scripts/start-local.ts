/**
 * `npm start [-- --users N]`: the whole job on the embedded local stack, start to finish.
 * Starts DynamoDB Local, the S3 server and the fake MoonKey API, seeds N users, runs two
 * scheduled snapshots an hour apart (between them a few users join and a few are deleted at
 * MoonKey, so sessions start and end) and then an audit of three users, through the deployed
 * state machine's own definition (local/state-machine-runner.ts: Plan, a Map of Work loops,
 * Commit, the completion event), with each Work invocation given 2 seconds so the run visibly
 * continues across invocations. Prints the completion event the run would publish, what landed
 * where, a sample Athena-style query and the shipped "new sessions since the last snapshot"
 * query answered by DuckDB, then stops everything it started.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NAMED_QUERIES } from '../infra/constructs/named-queries';
import { DEFAULT_EXPORT_PREFIX } from '../lambda/core/facts';
import { closeRuntime } from '../lambda/handlers/handler';
import { downloadPrefix } from '../local/download-prefix';
import { queryLocalSnapshots } from '../local/duckdb-reader';
import { userIdFor } from '../local/fake-sessions';
import { runExportLocally } from '../local/local-export';
import { startLocalStack } from '../local/local-stack';
import { createUsersTable, seedUsers } from '../local/seed-users';
import type { LocalExecution } from '../local/state-machine-runner';

const TABLE = 'moonkey-users';
const PREFIX = DEFAULT_EXPORT_PREFIX;
/** Users that join, and users deleted at MoonKey, between the two scheduled snapshots. */
const CHANGED_USERS = 5;

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { users: { type: 'string', default: '1000' } } });
  const users = Number(values.users);
  if (!Number.isInteger(users) || users < 1)
    throw new Error(`--users must be a positive whole number, got ${values.users}`);
  const started = Date.now();
  const step = (text: string) =>
    console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(5)}s] ${text}`);

  step('starting DynamoDB Local, the S3 server and the fake MoonKey API ...');
  const stack = await startLocalStack({ api: { baseTime: Math.floor(Date.now() / 1000), latencyMs: 20 } });
  try {
    step(`DynamoDB Local ${stack.dynamodb.endpoint}, S3 ${stack.s3.endpoint}, MoonKey ${stack.api.url}`);
    await createUsersTable(stack.dynamodbClient, TABLE);
    await seedUsers(stack.dynamodbClient, TABLE, users);
    step(`seeded ${users} users into ${TABLE}`);

    // The job reads its configuration from the environment, exactly as in Lambda. A Work
    // invocation gets 2 s here: it takes no new scan page 1 s before its deadline, and pages of
    // 100 users finish well inside that margin.
    Object.assign(process.env, stack.env, {
      USERS_TABLE_NAME: TABLE,
      EXPORT_PREFIX: PREFIX,
      EXPORT_DEADLINE_MARGIN_MS: '1000',
      EXPORT_SCAN_PAGE_SIZE: '100',
      LOG_LEVEL: 'WARN',
      METRICS_ENABLED: 'false',
      // Both copies, so the demo shows what each audience reads (docs/pii.md). A demo key: the
      // deployed stack keeps its key in Secrets Manager.
      EXPORT_COPIES: 'both',
      EXPORT_PII_POLICY: 'analytics',
      EXPORT_PII_KEY: 'local-demo-hmac-key-not-for-real-data!!',
    });
    const budget = { workBudgetMs: 2_000 };

    const slot = Math.floor(Date.now() / 3_600_000) * 3_600_000;
    const scheduledRun = (time: string) =>
      runExportLocally(
        { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time, detail: {} },
        new Date(),
        budget,
      );
    const previousTime = new Date(slot - 3_600_000).toISOString();
    step(`scheduled snapshot of slot ${previousTime} ...`);
    report(await scheduledRun(previousTime), step);

    // What changes before the next slot: new users join, others are deleted at MoonKey.
    await seedUsers(stack.dynamodbClient, TABLE, users + CHANGED_USERS);
    stack.api.configure({ deletedUsers: Array.from({ length: CHANGED_USERS }, (_, i) => userIdFor(10 + i)) });
    step(`${CHANGED_USERS} users joined, ${CHANGED_USERS} were deleted at MoonKey`);

    const scheduledTime = new Date(slot).toISOString();
    step(`scheduled snapshot of slot ${scheduledTime} ...`);
    const scheduled = await scheduledRun(scheduledTime);
    const committed = report(scheduled, step);
    const [event] = scheduled.events;
    step(
      `completion event the state machine would put on ${event?.eventBusName} (as a rule's target receives it):\n${JSON.stringify(event?.event, null, 2)}`,
    );

    const auditUsers = [userIdFor(0), userIdFor(1), userIdFor(2)];
    step(`audit snapshot of ${auditUsers.length} users ...`);
    const audit = await runExportLocally(
      { reason: 'local demo: SEC-142 account takeover review', userIds: auditUsers },
      new Date(),
      budget,
    );
    report(audit, step);

    const dir = join(process.cwd(), '.local-data', 'snapshot');
    await rm(dir, { recursive: true, force: true });
    const keys = await downloadPrefix(stack.s3Client, stack.bucket, `${PREFIX}/`, dir);
    step(`objects in s3://${stack.bucket}/ (copied to ${dir}):`);
    for (const key of keys) console.log(`         ${key}`);

    // Through the reader view, as Athena readers do: `sessions` is the stack's own view SQL
    // (lambda/snapshot/reader-view.ts) over sessions_raw and manifests, so only committed runs show.
    const sql = `-- DuckDB dialect (Athena's Trino spells the unnest AS f(delivery_channel, type, method))
SELECT f.type AS factor_type, f.delivery_channel, count(*) AS sessions
FROM sessions s, unnest(s.factors) AS t(f)
WHERE s.snapshot_id = '${committed.snapshotId}'
GROUP BY ALL ORDER BY sessions DESC LIMIT 10`;
    step(`sample query (DuckDB standing in for Athena, through the reader view sessions):\n${sql}`);
    console.table(await queryLocalSnapshots(dir, PREFIX, sql));

    // The named query the stack ships, as Athena runs it: through the change view session_changes
    // over the two scheduled snapshots (DuckDB stands in for Trino's date_format and from_unixtime).
    // The event names the database to query (the local stack's: LocalSessionExport in snake_case).
    const database = (event?.event.detail as { views?: { database?: string } } | undefined)?.views?.database;
    if (!database) throw new Error('the completion event names no database');
    const newSessions = NAMED_QUERIES.find((q) => q.id === 'NewSessions');
    if (!newSessions) throw new Error('the named query NewSessions is gone');
    step(
      `change query "${newSessions.name}" (the named query's Trino text, run by DuckDB):\n${newSessions.sql(database)}`,
    );
    const started = await queryLocalSnapshots<Record<string, unknown>>(
      dir,
      PREFIX,
      newSessions.sql(database),
      {
        database,
      },
    );
    console.table(
      started.map(({ user_id, session_id, ip, previous_snapshot_id }) => ({
        user_id,
        session_id,
        ip,
        previous_snapshot_id,
      })),
    );
    // The analysts' view: tokens for identifiers, networks for IPs, the same rule for committed runs.
    const pseudonymizedSql = `SELECT s.device_fingerprint.ip AS network, count(*) AS sessions,
       count(DISTINCT f.method.email) AS distinct_email_tokens
FROM sessions_pseudonymized s, unnest(s.factors) AS t(f)
WHERE s.snapshot_id = '${committed.snapshotId}'
GROUP BY ALL ORDER BY sessions DESC LIMIT 5`;
    step(
      `the pseudonymized copy (policy analytics), through the view sessions_pseudonymized:\n${pseudonymizedSql}`,
    );
    console.table(await queryLocalSnapshots(dir, PREFIX, pseudonymizedSql));
    step('done');
  } finally {
    await closeRuntime();
    await stack.stop();
  }
}

/** What the Commit phase returned (the execution's output). */
interface CommitOutput {
  readonly snapshotId: string;
  readonly runId: string;
  readonly status: string;
  readonly manifestKey: string | null;
  readonly counts: Record<string, number>;
}

/** Prints how a run ended and returns its commit result; a failed run stops the demo. */
function report(execution: LocalExecution, step: (text: string) => void): CommitOutput {
  const invocations = Object.entries(execution.calls)
    .map(([state, n]) => `${state} ${n}`)
    .join(', ');
  if (execution.status !== 'SUCCEEDED') {
    throw new Error(
      `${execution.name} ${execution.status}: ${execution.error?.Error}: ${execution.error?.Cause} (invocations: ${invocations})`,
    );
  }
  const out = execution.output as CommitOutput;
  step(`${out.status}: ${out.snapshotId} run ${out.runId} — ${JSON.stringify(out.counts)}`);
  step(`invocations: ${invocations} (execution ${execution.name})`);
  step(`manifest: ${out.manifestKey}`);
  return out;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exitCode = 1;
});
