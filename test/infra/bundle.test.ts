import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import { DuckDBInstance } from '@duckdb/node-api';
import { App, type AssetStaging } from 'aws-cdk-lib';
import { SessionExportStack } from '../../infra/session-export-stack';
import { type AthenaColumn, manifestColumns, sessionColumns } from '../../lambda/snapshot/athena-columns';
import type { Manifest } from '../../lambda/snapshot/manifest';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { duckType } from '../../local/duckdb-reader';
import { scheduledExecutionName } from '../../local/execution-name';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import {
  loadStateMachineDefinitions,
  type StateMachineDefinitions,
} from '../../local/state-machine-definitions';
import { type LocalExecution, LocalStepFunctions } from '../../local/state-machine-runner';
import { startBundleHost } from '../helpers/bundle-host';
import { scheduledEvent } from '../helpers/scheduled-event';

const TABLE = 'users-bundle-test';
const PREFIX = 'moonkey';
const USERS = 12;
const SCHEDULED_TIME = '2026-11-26T02:00:00Z';
const SNAPSHOT_ID = 'scheduled-20261126T020000Z';
const DT = '2026-11-26';

/**
 * The artifact Lambda runs, driven the way Step Functions drives it: the synthesized state-machine
 * definition on the local runner (the one driver of a run outside AWS), each Task invoking the
 * minified bundle in a plain Node process (test/helpers/bundle-host-child.cjs). Whatever depends on
 * names (error classes through minification) or on the Node version is checked on that artifact.
 * `.ci/run` runs the suite on Node 24, Lambda's nodejs24.x major, and says so in EXPECT_NODE_VERSION.
 */
const SCHEDULED_EVENT = {
  ...scheduledEvent(SCHEDULED_TIME),
  resources: ['arn:aws:scheduler:us-east-1:123456789012:schedule/default/test'],
};

const duckColumns = (columns: readonly AthenaColumn[]) =>
  `{${columns.map((c) => `'${c.name}': '${duckType(c.type)}'`).join(', ')}}`;

describe('the bundled function (as synthesized by the stack) against the local stack', () => {
  let outdir: string;
  let snapshotDir: string;
  let bundleDir: string;
  let local: LocalStack;
  let definitions: StateMachineDefinitions;
  let outcome: BundleRun;
  let manifest: Manifest;
  let userIds: string[];

  interface BundleRun {
    /** The Node version the bundle ran on. */
    readonly node: string;
    readonly execution: LocalExecution;
    /** What the execution's Plan returned (the run's ids). */
    readonly runId: string | undefined;
  }

  /**
   * One scheduled run of the synthesized state machine on the local runner, every Task invoking
   * the minified bundle in a plain Node process (its own, with the local stack's environment plus
   * `env`, so each run is a cold start with its own configuration).
   */
  async function runBundle(env: Record<string, string>): Promise<BundleRun> {
    const host = await startBundleHost(path.join(bundleDir, 'index.js'), {
      PATH: process.env.PATH ?? '',
      ...local.env,
      USERS_TABLE_NAME: TABLE,
      ...env,
    });
    let runId: string | undefined;
    try {
      const sfn = new LocalStepFunctions(definitions, host.handler, {
        // Lambda's 15 minutes: one Work per segment, as a small table gets in AWS.
        workBudgetMs: 900_000,
        onPhase: (call) => {
          if (call.state === 'Plan' && call.result)
            runId = (call.result as { run: { runId: string } }).run.runId;
        },
      });
      const execution = await sfn.startExecution(scheduledExecutionName(SCHEDULED_TIME), SCHEDULED_EVENT);
      return { node: host.node, execution, runId };
    } finally {
      await host.stop();
    }
  }

  async function manifestUnder(prefix: string): Promise<Manifest> {
    const [key] = await listKeys(local.s3Client, local.bucket, `${prefix}/manifests/`);
    const object = await local.s3Client.send(new GetObjectCommand({ Bucket: local.bucket, Key: key }));
    return JSON.parse((await object.Body?.transformToString()) ?? '{}') as Manifest;
  }

  beforeAll(async () => {
    // Prepare: synthesize WITH bundling: the NodejsFunction runs local esbuild with the stack's options.
    outdir = await mkdtemp(path.join(tmpdir(), 'moonkey-cdk-'));
    snapshotDir = await mkdtemp(path.join(tmpdir(), 'moonkey-snapshot-'));
    const app = new App({ outdir });
    const stack = new SessionExportStack(app, 'BundleTest', { createDemoUsersTable: true });
    const staging = stack.exportFunction.function.node
      .findChild('Code')
      .node.findChild('Stage') as AssetStaging;
    bundleDir = staging.absoluteStagedPath;

    [local, definitions] = await Promise.all([startLocalStack(), loadStateMachineDefinitions()]);
    await createUsersTable(local.dynamodbClient, TABLE);
    userIds = await seedUsers(local.dynamodbClient, TABLE, USERS);

    // Act: the state machine runs the bundle with the event EventBridge Scheduler sends.
    outcome = await runBundle({ EXPORT_PREFIX: PREFIX });

    // Copy the snapshot out of the S3 server (DuckDB's httpfs cannot download here), keys as paths.
    for (const key of await listKeys(local.s3Client, local.bucket, `${PREFIX}/`)) {
      const object = await local.s3Client.send(new GetObjectCommand({ Bucket: local.bucket, Key: key }));
      const bytes = Buffer.from(
        await (object.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array())),
      );
      const file = path.join(snapshotDir, key);
      await mkdir(path.dirname(file), { recursive: true });
      await writeFile(file, bytes);
      if (key.endsWith('.json') && key.includes('/manifests/')) manifest = JSON.parse(bytes.toString('utf8'));
    }
  }, 120_000);

  afterAll(async () => {
    await local?.stop();
    await rm(outdir, { recursive: true, force: true });
    await rm(snapshotDir, { recursive: true, force: true });
  });

  // The Node that runs jest, unless the caller names the one this pass must be on (.ci/run's Node 24
  // pass sets EXPECT_NODE_VERSION from the binary it put first on PATH).
  const expectedNode = process.env.EXPECT_NODE_VERSION || process.version;

  it(`runs in a plain Node process on ${expectedNode}`, () => {
    expect(outcome.node).toBe(expectedNode);
  });

  describe('on its failure paths (error names must survive minification)', () => {
    it('names a rejected API key ApiAuthError to Step Functions and in the failed manifest', async () => {
      const failed = await runBundle({ EXPORT_PREFIX: 'bad-key', MOONKEY_API_KEY: 'sk_wrong_key' });

      // The name Step Functions' Catch and the failure queue see is the class's, not a minified one.
      expect(failed.execution).toMatchObject({ status: 'FAILED', error: { Error: 'ApiAuthError' } });
      expect(failed.execution.calls).toMatchObject({ Plan: 1, Abort: 1 });
      expect(failed.execution.calls.Commit).toBeUndefined();
      const failedManifest = await manifestUnder('bad-key');
      expect(failedManifest.status).toBe('failed');
      expect(failedManifest.error).toEqual({
        type: 'ApiAuthError',
        step: 'Work',
        message:
          'MoonKey API rejected the API key (HTTP 401); the run was aborted so a bad key is not retried for every user. Check MOONKEY_API_KEY / MOONKEY_API_KEY_SECRET_ARN.',
      });
    });

    it("names a failed user's error by its class in the manifest and in failed-users/", async () => {
      const bad = userIds[0] as string;
      local.api.configure({ faults: { [bad]: [{ kind: 'status', status: 404 }] } });

      const result = await runBundle({ EXPORT_PREFIX: 'failed-user', EXPORT_FAILED_USERS_TOLERANCE: '1' });

      expect(result.execution.output).toMatchObject({ status: 'committed' });
      const committed = await manifestUnder('failed-user');
      expect(committed.failed_users).toEqual([
        expect.objectContaining({ user_id: bad, error_type: 'ApiRequestError' }),
      ]);
      const [failedFile] = committed.files.failed_users;
      const object = await local.s3Client.send(
        new GetObjectCommand({ Bucket: local.bucket, Key: failedFile?.key }),
      );
      const line = JSON.parse(
        gunzipSync(
          Buffer.from(await (object.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array()))),
        ).toString('utf8'),
      );
      expect(line).toMatchObject({ user_id: bad, error_type: 'ApiRequestError' });
    });
  });

  it('is one self-contained file (the AWS SDK included) plus its source map', async () => {
    expect((await readdir(bundleDir)).sort()).toEqual(['index.js', 'index.js.map']);
  });

  it('commits the scheduled snapshot through the state machine and says where it landed', () => {
    expect(outcome.execution.status).toBe('SUCCEEDED');
    // The turn gate reads one page of running executions (this one alone), then the phases run
    // once each, and the completion event goes out once.
    expect(outcome.execution.calls).toEqual({
      ListRunningExecutions: 1,
      Plan: 1,
      Work: 1,
      Commit: 1,
      PublishCommitted: 1,
    });
    expect(outcome.execution.output).toMatchObject({
      snapshotId: SNAPSHOT_ID,
      status: 'committed',
      manifestKey: `${PREFIX}/manifests/dt=${DT}/${SNAPSHOT_ID}.${outcome.runId}.json`,
    });
  });

  it('writes a committed manifest listing the session files that exist in S3', async () => {
    expect(manifest).toMatchObject({
      snapshot_id: SNAPSHOT_ID,
      trigger: 'scheduled',
      status: 'committed',
      dt: DT,
      table_location: `s3://${local.bucket}/${PREFIX}/sessions/`,
    });
    expect(manifest.counts.users_scanned).toBe(USERS);
    expect(manifest.counts.users_failed).toBe(0);
    expect(manifest.files.sessions.length).toBeGreaterThan(0);
    for (const file of manifest.files.sessions) {
      expect(file.key).toMatch(
        new RegExp(
          `^${PREFIX}/sessions/dt=${DT}/${SNAPSHOT_ID}\\.${outcome.runId}\\.s000-00000-[a-z0-9]+-\\d{5}\\.ndjson\\.gz$`,
        ),
      );
      const object = await local.s3Client.send(new GetObjectCommand({ Bucket: local.bucket, Key: file.key }));
      const body = Buffer.from(
        await (object.Body?.transformToByteArray() ?? Promise.resolve(new Uint8Array())),
      );
      expect(body.length).toBe(file.bytes);
      expect(gunzipSync(body).toString('utf8').trim().split('\n')).toHaveLength(file.records);
    }
  });

  describe('read by DuckDB with the Glue table declarations', () => {
    async function query<T>(sql: string): Promise<T[]> {
      const instance = await DuckDBInstance.create(':memory:');
      const connection = await instance.connect();
      try {
        const reader = await connection.runAndReadAll(sql);
        return reader.getRowObjectsJson() as T[];
      } finally {
        connection.closeSync();
        instance.closeSync();
      }
    }
    const sessions = () =>
      `read_ndjson('${snapshotDir}/${PREFIX}/sessions/**/*.ndjson.gz', columns = ${duckColumns(sessionColumns)},
        hive_partitioning = true, hive_types = {'dt': 'VARCHAR'}, format = 'newline_delimited')`;

    it('reads every exported session with every declared column', async () => {
      const rows = await query<Record<string, unknown>>(`SELECT * FROM ${sessions()}`);
      expect(rows).toHaveLength(manifest.counts.sessions_exported);
      expect(Object.keys(rows[0] ?? {}).sort()).toEqual([...sessionColumns.map((c) => c.name), 'dt'].sort());
      for (const row of rows) {
        // Every top-level field of the record schema is required: a NULL would mean a type mismatch.
        expect(sessionColumns.filter((c) => row[c.name] === null || row[c.name] === undefined)).toEqual([]);
        expect(row.snapshot_id).toBe(SNAPSHOT_ID);
        expect(row.run_id).toBe(outcome.runId);
        expect(row.dt).toBe(DT);
        expect(typeof row.id).toBe('string');
        expect(row.device_fingerprint).toEqual(expect.objectContaining({ ip: expect.any(String) }));
      }
    });

    it("types the API's epochs as DOUBLE and reaches into factors and their methods", async () => {
      const [row] = await query<{ started: string; kinds: string; verified: string; types: string }>(`
        SELECT typeof(started_at) AS started, count(DISTINCT f.type)::VARCHAR AS kinds,
               typeof(f.method.last_verified_at) AS verified, string_agg(DISTINCT f.type, ',' ORDER BY f.type) AS types
        FROM ${sessions()}, UNNEST(factors) AS t(f)
        GROUP BY ALL`);
      expect(row).toMatchObject({ started: 'DOUBLE', verified: 'DOUBLE' });
      expect(Number(row?.kinds)).toBeGreaterThan(1);
    });

    it('joins sessions to the committed manifest the way the "latest complete snapshot" query does', async () => {
      const rows = await query<{ sessions: string }>(`
        WITH m AS (
          SELECT * FROM read_ndjson('${snapshotDir}/${PREFIX}/manifests/**/*.json', columns = ${duckColumns(manifestColumns)},
            hive_partitioning = true, hive_types = {'dt': 'VARCHAR'}, format = 'newline_delimited')
          WHERE status = 'committed' AND trigger = 'scheduled'
          ORDER BY snapshot_at DESC LIMIT 1
        )
        SELECT count(*)::VARCHAR AS sessions FROM ${sessions()} s JOIN m ON s.dt = m.dt AND s.snapshot_id = m.snapshot_id`);
      expect(Number(rows[0]?.sessions)).toBe(manifest.counts.sessions_exported);
    });
  });
});
