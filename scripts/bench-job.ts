/**
 * One benchmark run in its own process, so its CPU time and peak RSS are the job's alone.
 * `scripts/bench.ts` bundles this file with esbuild (as the Lambda is bundled) and starts it with
 * `BENCH_JOB` (JSON, see BenchJob). The last stdout line is `BENCH_RESULT {json}`.
 *
 * Modes: `job` runs the real handler path (`invoke`, a scheduled event); `naive-all` and
 * `naive-seq` are the code a user might write first (see bench-naive.ts).
 */
import { getHeapSpaceStatistics } from 'node:v8';
import { closeRuntime, invoke } from '../lambda/handlers/handler';
import { type NaiveOptions, runNaive } from './bench-naive';
import { type BenchJob, type BenchJobResult, failedResult } from './bench-result';

const memoryPeaks: Record<string, number> = {};
const sampler = setInterval(() => {
  for (const [key, value] of Object.entries(process.memoryUsage())) {
    memoryPeaks[key] = Math.max(memoryPeaks[key] ?? 0, value);
  }
  for (const space of getHeapSpaceStatistics()) {
    const key = space.space_name.replace('_space', '');
    memoryPeaks[key] = Math.max(memoryPeaks[key] ?? 0, space.space_used_size);
  }
}, 250);
sampler.unref();

async function main(): Promise<BenchJobResult> {
  const job = JSON.parse(process.env.BENCH_JOB ?? '') as BenchJob;
  Object.assign(process.env, job.env);
  const started = performance.now();
  if (job.mode !== 'job') {
    const options: NaiveOptions = {
      sequential: job.mode === 'naive-seq',
      maxUsers: job.maxUsers,
      env: job.env,
      scheduledTime: job.scheduledTime,
    };
    const out = await runNaive(options);
    return finish(started, { ok: true, ...out, retries: 0 });
  }
  const outcome = await invoke(
    { 'detail-type': 'Scheduled Event', source: 'moonkey.cli', time: job.scheduledTime, detail: {} },
    'bench',
  );
  const wall = performance.now() - started;
  await closeRuntime();
  const m = outcome.manifest;
  const files = m.files.sessions;
  return finish(started, {
    ok: outcome.error === undefined,
    ...(outcome.error ? { error: `${outcome.error.name}: ${outcome.error.message}` } : {}),
    users: m.counts.users_processed,
    files: files.length,
    bytes: files.reduce((sum, f) => sum + f.bytes, 0),
    requests: m.counts.requests,
    retries: m.counts.retries,
    wallMs: wall,
  });
}

function finish(
  started: number,
  r: Omit<BenchJobResult, 'wallMs' | 'cpuUserMs' | 'cpuSystemMs' | 'maxRssBytes'> & { wallMs?: number },
): BenchJobResult {
  // The whole process since it started (module loading included): what a Lambda would be billed.
  const cpu = process.cpuUsage();
  return {
    ...r,
    wallMs: r.wallMs ?? performance.now() - started,
    cpuUserMs: cpu.user / 1000,
    cpuSystemMs: cpu.system / 1000,
    maxRssBytes: process.resourceUsage().maxRSS * 1024,
    memory: memoryPeaks,
  };
}

main()
  .catch((error: unknown) =>
    failedResult(error instanceof Error ? `${error.name}: ${error.message}` : String(error)),
  )
  .then((result) => {
    process.stdout.write(`BENCH_RESULT ${JSON.stringify(result)}\n`);
    // Sockets of the naive baseline's global fetch dispatcher would keep the process alive.
    process.exit(0);
  });
