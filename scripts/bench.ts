/**
 * `npm run bench -- [--users N] [--big-users N] [--configs a,b,...] [--latency MS] [--rps R]
 *                   [--hidden-limit H] [--profile] [--seed-only] [--pii]`
 *
 * `--pii` runs the copies modes side by side (EXPORT_COPIES raw, pseudonymized and both, the
 * `pseudonymize` policy: every field hashed), so the cost of the pseudonymized copy is one table.
 *
 * The export against the local stack with every part in its own process: DynamoDB Local (the
 * jar, persisted under .bench-data/ so a seeded table is reused between runs), fauxqs S3, the
 * fake MoonKey API (fixed latency, optional hidden rate limit) and, per configuration, the job
 * in a fresh child process (the esbuild bundle of scripts/bench-job.ts), so the CPU time and
 * peak RSS in the table are the job's own. Prints one table plus the rate-cap and AIMD checks.
 * All traffic stays on 127.0.0.1. Every run has a time limit; a run that overstays is killed
 * and reported as such.
 */
import { spawn } from 'node:child_process';
import {
  copyFileSync,
  createWriteStream,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  CreateTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
} from '@aws-sdk/client-dynamodb';
import { DeleteObjectsCommand, type S3Client } from '@aws-sdk/client-s3';
import { build } from 'esbuild';
import { listKeys } from '../lambda/snapshot/s3-objects';
import { freePort, startChildServer } from '../local/child-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION, startDynamoDbLocal } from '../local/dynamodb-local';
import { userIdFor } from '../local/fake-sessions';
import { localDynamoDbClient, localS3Client } from '../local/local-stack';
import { startS3Server } from '../local/s3-server';
import { createUsersTable, putUserItems } from '../local/seed-users';
import { loadStateMachineDefinitions } from '../local/state-machine-definitions';
import { type BenchJob, type BenchJobResult, failedResult } from './bench-result';

const ROOT = resolve(__dirname, '..');
const DATA = join(ROOT, '.bench-data');
const BUILD = join(DATA, 'build');
const API_KEY = 'sk_bench_local';
/** The HMAC key of the `--pii` configurations: local, and only for the benchmark's fake sessions. */
const BENCH_PII_KEY = 'bench-pii-key-0123456789abcdefghijklmn';
const PII_CONFIGS = ['pii-raw', 'pii-pseudonymized', 'pii-both'];
const BUCKET = 'moonkey-bench';
const META_TABLE = 'bench_meta';
/** DynamoDB Local's file with -sharedDb. */
const DB_FILE = 'shared-local-instance.db';

interface ConfigSpec {
  readonly name: string;
  readonly mode: BenchJob['mode'];
  readonly users: 'main' | 'big';
  readonly maxUsers?: number;
  readonly concurrency?: number;
  readonly maxRps?: number;
  readonly adaptive?: boolean;
  /** The fake API's hidden limit (429 + Retry-After: 1 above it). */
  readonly hiddenLimit?: number;
  /** Job environment of this configuration only. */
  readonly env?: Readonly<Record<string, string>>;
  /** Requests per second the configuration cannot beat, given latency L. */
  readonly bound: (latencyMs: number) => { rps: number; label: string };
}

function configs(options: { rps: number; hiddenLimit: number }): ConfigSpec[] {
  const cl = (c: number) => (l: number) => ({ rps: (c * 1000) / l, label: `C/L=${c}/${l}ms` });
  const job = (name: string, c: number, extra: Partial<ConfigSpec> = {}): ConfigSpec => ({
    name,
    mode: 'job',
    users: 'main',
    concurrency: c,
    bound: cl(c),
    ...extra,
  });
  return [
    {
      name: 'naive-seq',
      mode: 'naive-seq',
      users: 'main',
      maxUsers: 500,
      bound: (l) => ({ rps: 1000 / l, label: `1/L=1/${l}ms` }),
    },
    {
      name: 'naive-all',
      mode: 'naive-all',
      users: 'main',
      bound: () => ({ rps: Number.NaN, label: 'unbounded' }),
    },
    job('c16', 16),
    job('c64', 64),
    job('c256', 256),
    job('rps', 256, { maxRps: options.rps, bound: () => ({ rps: options.rps, label: `R=${options.rps}` }) }),
    job('aimd', 256, {
      adaptive: true,
      hiddenLimit: options.hiddenLimit,
      bound: () => ({ rps: options.hiddenLimit, label: `hidden=${options.hiddenLimit}` }),
    }),
    job('aimd-off', 256, {
      adaptive: false,
      hiddenLimit: options.hiddenLimit,
      bound: () => ({ rps: options.hiddenLimit, label: `hidden=${options.hiddenLimit}` }),
    }),
    job('c256-big', 256, { users: 'big' }),
    ...(['raw', 'pseudonymized', 'both'] as const).map((copies) =>
      job(`pii-${copies}`, 64, {
        env: { EXPORT_COPIES: copies, EXPORT_PII_POLICY: 'pseudonymize', EXPORT_PII_KEY: BENCH_PII_KEY },
      }),
    ),
  ];
}

interface Row {
  readonly spec: ConfigSpec;
  readonly result: BenchJobResult;
  readonly boundRps: number;
  readonly boundLabel: string;
  readonly apiStats: FakeStats;
}

interface FakeStats {
  requests: number;
  byStatus: Record<string, number>;
  perSecond: (number | null)[];
  /** CPU the fake API process used during the run (from /proc), to see whether the cores were full. */
  cpuMs?: number;
}

/** utime + stime of a process in ms, from /proc (Linux); NaN elsewhere. */
function processCpuMs(pid: number | undefined): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return Number.NaN;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      users: { type: 'string', default: '100000' },
      'big-users': { type: 'string', default: '1000000' },
      configs: { type: 'string' },
      latency: { type: 'string', default: '50' },
      rps: { type: 'string', default: '2000' },
      'hidden-limit': { type: 'string', default: '1500' },
      profile: { type: 'boolean', default: false },
      'seed-only': { type: 'boolean', default: false },
      pii: { type: 'boolean', default: false },
      /** Extra job environment for every configuration, e.g. --env EXPORT_GZIP_LEVEL=1 (repeatable). */
      env: { type: 'string', multiple: true },
      /** Extra node flags for the job process, for experiments (repeatable). */
      'node-flag': { type: 'string', multiple: true },
    },
    strict: true,
  });
  const users = Number(values.users);
  const bigUsers = Number(values['big-users']);
  const latencyMs = Number(values.latency);
  const all = configs({ rps: Number(values.rps), hiddenLimit: Number(values['hidden-limit']) });
  const wanted = values.configs?.split(',').map((s) => s.trim()) ?? (values.pii ? PII_CONFIGS : undefined);
  const selected = wanted
    ? all.filter((c) => wanted.includes(c.name))
    : all.filter((c) => !PII_CONFIGS.includes(c.name));
  const unknown = wanted?.filter((w) => !all.some((c) => c.name === w)) ?? [];
  if (unknown.length > 0 || selected.length === 0) {
    throw new Error(
      `unknown configuration(s) ${unknown.join(', ')}; known: ${all.map((c) => c.name).join(', ')}`,
    );
  }
  for (const [name, n] of Object.entries({ users, bigUsers, latencyMs })) {
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number`);
  }

  // DynamoDB Local keeps its data in one SQLite file. On this disk every BatchWriteItem waits
  // for an fsync (about 750 items/s); on tmpfs it seeds about 3x faster. So the run works on a
  // copy in /dev/shm and copies the file back only when it seeded something new.
  const persisted = join(DATA, 'dynamodb');
  mkdirSync(persisted, { recursive: true });
  const work = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/moonkey-bench-') : persisted;
  if (work !== persisted && existsSync(join(persisted, DB_FILE))) {
    copyFileSync(join(persisted, DB_FILE), join(work, DB_FILE));
  }
  let seeded = false;
  const t0 = performance.now();
  log('building the job and the fake API with esbuild');
  await build({
    entryPoints: {
      'bench-job': join(ROOT, 'scripts/bench-job.ts'),
      'fake-api': join(ROOT, 'local/fake-moonkey-api-main.ts'),
    },
    outdir: BUILD,
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'cjs',
    sourcemap: true,
    logLevel: 'warning',
  });

  // The job runs through the deployed definition; the child gets it as JSON (no CDK in its bundle).
  const definitionsFile = join(BUILD, 'state-machine-definitions.json');
  writeFileSync(definitionsFile, JSON.stringify(await loadStateMachineDefinitions()));

  log('starting DynamoDB Local (persisted), fauxqs S3 and the fake API, each in its own process');
  const apiPort = await freePort();
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const [dynamodb, s3server, api] = await Promise.all([
    startDynamoDbLocal({ dbPath: work }),
    startS3Server(),
    startChildServer({
      name: 'fake MoonKey API',
      command: process.execPath,
      args: [join(BUILD, 'fake-api.js')],
      env: {
        ...process.env,
        FAKE_API_PORT: String(apiPort),
        FAKE_API_KEY: API_KEY,
        FAKE_API_LATENCY_MS: String(latencyMs),
      },
      ready: async () => (await fetch(`${apiUrl}/_fake/stats`)).ok,
    }),
  ]);
  const { CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const ddb = localDynamoDbClient(dynamodb.endpoint);
  const s3 = localS3Client(s3server.endpoint);
  const rows: Row[] = [];
  try {
    await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
    const counts = new Set(selected.map((c) => (c.users === 'big' ? bigUsers : users)));
    for (const n of counts) seeded = (await ensureSeeded(ddb, n)) || seeded;
    log(`stack ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`);

    const baseEnv: Record<string, string> = {
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
      AWS_ENDPOINT_URL_S3: s3server.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      EXPORT_BUCKET_NAME: BUCKET,
      MOONKEY_API_URL: apiUrl,
      MOONKEY_API_KEY: API_KEY,
      METRICS_ENABLED: 'false',
    };
    for (const [i, spec] of (values['seed-only'] ? [] : selected).entries()) {
      const n = spec.users === 'big' ? bigUsers : users;
      const { rps: boundRps, label: boundLabel } = spec.bound(latencyMs);
      await control(apiUrl, 'configure', { latencyMs, rateLimitRps: spec.hiddenLimit ?? 0 });
      await control(apiUrl, 'reset-stats');
      const env: Record<string, string> = {
        ...baseEnv,
        USERS_TABLE_NAME: tableFor(n),
        EXPORT_PREFIX: `bench/${spec.name}`,
        ...(spec.concurrency ? { EXPORT_CONCURRENCY: String(spec.concurrency) } : {}),
        ...(spec.maxRps ? { EXPORT_MAX_RPS: String(spec.maxRps) } : {}),
        ...(spec.adaptive === undefined ? {} : { EXPORT_ADAPTIVE_CONCURRENCY: String(spec.adaptive) }),
        ...spec.env,
        ...Object.fromEntries(
          (values.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]),
        ),
      };
      const apiCpuBefore = processCpuMs(api.process.pid);
      const runUsers = Math.min(n, spec.maxUsers ?? n);
      // Bounded: four times the ideal duration (or a minute), plus a minute for start and commit.
      const idealMs = Number.isFinite(boundRps) ? (runUsers / boundRps) * 1000 : 60_000;
      const timeoutMs = Math.max(60_000, 4 * idealMs) + 60_000;
      log(`[${i + 1}/${selected.length}] ${spec.name}: ${runUsers} users, ${boundLabel}`);
      const result = await runChild(
        {
          mode: spec.mode,
          env,
          scheduledTime: '2026-11-26T02:00:00Z',
          definitionsFile,
          ...(spec.maxUsers ? { maxUsers: spec.maxUsers } : {}),
        },
        { timeoutMs, profile: values.profile, name: spec.name, nodeFlags: values['node-flag'] ?? [] },
      );
      const apiStats = (await control(apiUrl, 'stats')) as FakeStats;
      apiStats.cpuMs = processCpuMs(api.process.pid) - apiCpuBefore;
      rows.push({ spec, result, boundRps, boundLabel, apiStats });
      log(
        `    ${describe(rows[rows.length - 1] as Row)}; fake API CPU ${(apiStats.cpuMs ?? Number.NaN).toFixed(0)} ms`,
      );
      await deletePrefix(s3, `bench/${spec.name}/`);
    }
  } finally {
    ddb.destroy();
    s3.destroy();
    await Promise.all([api.stop(), dynamodb.stop(), s3server.stop()]);
    if (work !== persisted) {
      if (seeded) {
        log(`saving the seeded tables to ${persisted}`);
        copyFileSync(join(work, DB_FILE), join(persisted, DB_FILE));
      }
      rmSync(work, { recursive: true, force: true });
    }
  }
  printReport(rows, latencyMs);
}

function tableFor(n: number): string {
  return `bench_users_${n}`;
}

/** Seeds `bench_users_<n>` once; a marker item in bench_meta says the seed finished. */
async function ensureSeeded(ddb: DynamoDBClient, n: number): Promise<boolean> {
  const table = tableFor(n);
  await ddb
    .send(
      new CreateTableCommand({
        TableName: META_TABLE,
        AttributeDefinitions: [{ AttributeName: 'table', AttributeType: 'S' }],
        KeySchema: [{ AttributeName: 'table', KeyType: 'HASH' }],
        BillingMode: 'PAY_PER_REQUEST',
      }),
    )
    .catch(() => undefined);
  await ddb.send(new DescribeTableCommand({ TableName: META_TABLE }));
  const marker = await ddb.send(new GetItemCommand({ TableName: META_TABLE, Key: { table: { S: table } } }));
  if (marker.Item?.users?.N === String(n)) {
    log(`reusing ${table} (seeded earlier)`);
    return false;
  }
  log(`seeding ${n} users into ${table} (once; kept under .bench-data/dynamodb)`);
  const started = performance.now();
  await createUsersTable(ddb, table);
  const chunk = 10_000;
  for (let i = 0; i < n; i += chunk) {
    const items = [];
    for (let j = i; j < Math.min(n, i + chunk); j++) {
      items.push({
        Item: {
          user_id: { S: userIdFor(j) },
          email: { S: `user${j}@example.com` },
          plan: { S: j % 3 === 0 ? 'enterprise' : 'free' },
        },
      });
    }
    await putUserItems(ddb, table, items, 32);
    if ((i / chunk) % 10 === 9) log(`  ${i + chunk} users seeded`);
  }
  await ddb.send(
    new PutItemCommand({ TableName: META_TABLE, Item: { table: { S: table }, users: { N: String(n) } } }),
  );
  log(`seeded ${n} users in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return true;
}

async function control(apiUrl: string, what: 'configure' | 'reset-stats' | 'stats', body?: unknown) {
  const res = await fetch(`${apiUrl}/_fake/${what}`, {
    method: what === 'stats' ? 'GET' : 'POST',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  if (!res.ok) throw new Error(`fake API /_fake/${what} answered ${res.status}`);
  return res.json();
}

async function deletePrefix(s3: S3Client, prefix: string): Promise<void> {
  const keys = await listKeys(s3, BUCKET, prefix);
  for (let i = 0; i < keys.length; i += 1000) {
    await s3.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) },
      }),
    );
  }
}

function runChild(
  job: BenchJob,
  options: { timeoutMs: number; profile: boolean; name: string; nodeFlags: string[] },
): Promise<BenchJobResult> {
  const args = [
    ...options.nodeFlags,
    ...(options.profile
      ? [
          '--cpu-prof',
          `--cpu-prof-dir=${join(DATA, 'profiles')}`,
          `--cpu-prof-name=${options.name}.cpuprofile`,
        ]
      : []),
    join(BUILD, 'bench-job.js'),
  ];
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, args, {
      env: { PATH: process.env.PATH ?? '', BENCH_JOB: JSON.stringify(job) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    const tail: string[] = [];
    mkdirSync(join(DATA, 'logs'), { recursive: true });
    const logFile = createWriteStream(join(DATA, 'logs', `${options.name}.log`));
    child.stdout.pipe(logFile);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      // Keep only the last few lines: the job logs progress as JSON.
      if (stdout.length > 1_000_000) stdout = stdout.slice(-100_000);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      tail.push(chunk.toString());
      if (tail.length > 20) tail.shift();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      const line = stdout
        .split('\n')
        .reverse()
        .find((l) => l.startsWith('BENCH_RESULT '));
      if (line) return resolvePromise(JSON.parse(line.slice('BENCH_RESULT '.length)) as BenchJobResult);
      resolvePromise(
        failedResult(
          signal === 'SIGKILL'
            ? `killed after ${options.timeoutMs} ms`
            : `exited ${code ?? signal}: ${tail.join('').slice(-500)}`,
        ),
      );
    });
  });
}

const usersPerSecond = (r: BenchJobResult) => (r.wallMs > 0 ? (r.users * 1000) / r.wallMs : 0);
const cpuPerUser = (r: BenchJobResult) => (r.users > 0 ? (r.cpuUserMs + r.cpuSystemMs) / r.users : 0);
const mb = (bytes: number) => (bytes / (1024 * 1024)).toFixed(1);

function describe(row: Row): string {
  const r = row.result;
  if (!r.ok) return `FAILED: ${r.error}`;
  const memory = Object.entries(r.memory ?? {})
    .map(([k, v]) => `${k} ${mb(v)}`)
    .join(', ');
  return `${usersPerSecond(r).toFixed(0)} users/s in ${(r.wallMs / 1000).toFixed(1)} s, ${cpuPerUser(r).toFixed(3)} ms CPU/user (user ${r.cpuUserMs.toFixed(0)} ms, system ${r.cpuSystemMs.toFixed(0)} ms), peak RSS ${mb(r.maxRssBytes)} MB (peaks MB: ${memory})`;
}

function maxWindow(stats: FakeStats): number {
  // Whole seconds since the stats were reset; the first and last are partial, never larger.
  return Math.max(0, ...stats.perSecond.map((v) => v ?? 0));
}

function printReport(rows: Row[], latencyMs: number): void {
  const header = [
    'configuration',
    'users',
    'wall s',
    'users/s',
    'bound (calls/s)',
    'ratio',
    'job CPU ms/user',
    'peak RSS MB',
    'files',
    'bytes',
  ];
  const lines = rows.map(({ spec, result: r, boundRps, boundLabel }) => {
    const ups = usersPerSecond(r);
    return [
      spec.name + (r.ok ? '' : ' (FAILED)'),
      String(r.users),
      (r.wallMs / 1000).toFixed(1),
      ups.toFixed(0),
      Number.isFinite(boundRps) ? `${boundRps.toFixed(0)} (${boundLabel})` : boundLabel,
      Number.isFinite(boundRps) ? `${((ups / boundRps) * 100).toFixed(1)}%` : '-',
      cpuPerUser(r).toFixed(3),
      mb(r.maxRssBytes),
      String(r.files),
      String(r.bytes),
    ];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => (l[i] ?? '').length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  console.log(`\nLatency L = ${latencyMs} ms; ${new Date().toISOString()}; Node ${process.version}\n`);
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const line of lines) console.log(fmt(line));
  console.log('');
  for (const row of rows) {
    const r = row.result;
    if (!r.ok) console.log(`${row.spec.name}: ${r.error}`);
    if (row.spec.maxRps !== undefined) {
      const max = maxWindow(row.apiStats);
      console.log(
        `${row.spec.name}: R = ${row.spec.maxRps}/s; busiest one-second window at the API ${max} requests (${((max / row.spec.maxRps - 1) * 100).toFixed(1)}% vs R; limit +5%); achieved ${usersPerSecond(r).toFixed(0)} users/s = ${((usersPerSecond(r) / row.spec.maxRps) * 100).toFixed(1)}% of R`,
      );
    }
    if (row.spec.hiddenLimit !== undefined) {
      const throttled = row.apiStats.byStatus['429'] ?? 0;
      console.log(
        `${row.spec.name}: hidden limit ${row.spec.hiddenLimit}/s, adaptive ${row.spec.adaptive ? 'on' : 'off'}: ${throttled} 429s received (${row.apiStats.requests} requests for ${r.users} users, ${r.retries} retries); achieved ${usersPerSecond(r).toFixed(0)} users/s = ${((usersPerSecond(r) / row.spec.hiddenLimit) * 100).toFixed(1)}% of the hidden limit`,
      );
    }
  }
  const byName = new Map(rows.map((row) => [row.spec.name, row.result]));
  const main = byName.get('c256');
  const big = byName.get('c256-big');
  if (main?.ok && big?.ok) {
    console.log(
      `peak RSS: ${mb(big.maxRssBytes)} MB at ${big.users} users vs ${mb(main.maxRssBytes)} MB at ${main.users} users (${((big.maxRssBytes / main.maxRssBytes - 1) * 100).toFixed(1)}%)`,
    );
  }
}

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exitCode = 1;
});
