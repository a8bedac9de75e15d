/**
 * `npm start [-- --users N]`: the whole job on the embedded local stack, start to finish.
 * Starts DynamoDB Local, the S3 server and the fake MoonKey API, seeds N users, runs the
 * scheduled snapshot and then an audit of three users through the Lambda's own invocation path,
 * prints what landed where and answers a sample Athena-style query with DuckDB, then stops
 * everything it started.
 */
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DuckDBInstance } from '@duckdb/node-api';
import { closeRuntime, invoke } from '../lambda/handlers/handler';
import { downloadPrefix } from '../local/download-prefix';
import { userIdFor } from '../local/fake-sessions';
import { startLocalStack } from '../local/local-stack';
import { createUsersTable, seedUsers } from '../local/seed-users';

const TABLE = 'moonkey-users';
const PREFIX = 'moonkey';

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

    // The job reads its configuration from the environment, exactly as in Lambda.
    Object.assign(process.env, stack.env, { USERS_TABLE_NAME: TABLE, EXPORT_PREFIX: PREFIX });
    const quiet = { LOG_LEVEL: 'WARN', METRICS_ENABLED: 'false' };

    const scheduledTime = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
    step(`scheduled snapshot of slot ${scheduledTime} ...`);
    const scheduled = await invoke(
      { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time: scheduledTime, detail: {} },
      'npm-start-scheduled',
      { configDefaults: quiet },
    );
    report(scheduled.manifest, scheduled.manifestKey, step);
    if (scheduled.error) throw scheduled.error;

    const auditUsers = [userIdFor(0), userIdFor(1), userIdFor(2)];
    step(`audit snapshot of ${auditUsers.length} users ...`);
    const audit = await invoke(
      { reason: 'local demo: SEC-142 account takeover review', userIds: auditUsers },
      'npm-start-audit',
      { configDefaults: quiet },
    );
    report(audit.manifest, audit.manifestKey, step);
    if (audit.error) throw audit.error;

    const dir = join(process.cwd(), '.local-data', 'snapshot');
    await rm(dir, { recursive: true, force: true });
    const keys = await downloadPrefix(stack.s3Client, stack.bucket, `${PREFIX}/`, dir);
    step(`objects in s3://${stack.bucket}/ (copied to ${dir}):`);
    for (const key of keys) console.log(`         ${key}`);

    const sql = `SELECT f.type AS factor_type, f.delivery_channel, count(*) AS sessions
FROM read_ndjson('${dir}/${PREFIX}/sessions/*/*.ndjson.gz', hive_partitioning = true) s,
     unnest(s.factors) AS t(f)
WHERE s.snapshot_id = '${scheduled.manifest.snapshot_id}'
GROUP BY ALL ORDER BY sessions DESC LIMIT 10`;
    step(`sample query (DuckDB standing in for Athena):\n${sql}`);
    const db = await DuckDBInstance.create(':memory:');
    const connection = await db.connect();
    const rows = (await connection.runAndReadAll(sql)).getRowObjectsJson();
    console.table(rows);
    connection.closeSync();
    db.closeSync();
    step('done');
  } finally {
    await closeRuntime();
    await stack.stop();
  }
}

function report(
  manifest: Awaited<ReturnType<typeof invoke>>['manifest'],
  manifestKey: string | undefined,
  step: (text: string) => void,
): void {
  const c = manifest.counts;
  step(
    `${manifest.status}: ${manifest.snapshot_id} — ${c.users_processed} users, ${c.sessions_exported} sessions, ` +
      `${c.users_failed} failed, ${c.items_rejected} rejected, ${c.retries} retries, ${manifest.duration_ms} ms` +
      (manifest.error ? ` — ${manifest.error.type}: ${manifest.error.message}` : ''),
  );
  step(`manifest: ${manifestKey}`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
  process.exitCode = 1;
});
