/**
 * One benchmark run in its own process, so its CPU time and peak RSS are the job's alone.
 * `scripts/bench.ts` bundles this file with esbuild (as the Lambda is bundled) and starts it with
 * `BENCH_JOB` (JSON, see BenchJob). The last stdout line is `BENCH_RESULT {json}`.
 *
 * Modes: `job` runs a scheduled snapshot the way it runs in AWS: the synthesized state-machine
 * definition (written by bench.ts to `BenchJob.definitionsFile`, so this bundle carries no CDK) on
 * the local runner, every Task invoking the real Lambda handler with Lambda's 15 minutes;
 * `naive-all` and `naive-seq` are the code a user might write first (see bench-naive.ts).
 */
import { readFileSync } from 'node:fs';
import { getHeapSpaceStatistics } from 'node:v8';
import { FUNCTION_TIMEOUT_MS } from '../lambda/core/facts';
import { closeRuntime, getRuntime, handler } from '../lambda/handlers/handler';
import type { Manifest } from '../lambda/snapshot/manifest';
import { getJson } from '../lambda/snapshot/s3-objects';
import { scheduledExecutionName } from '../local/execution-name';
import type { StateMachineDefinitions } from '../local/state-machine-definitions';
import { LocalStepFunctions } from '../local/state-machine-runner';
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
  const definitions = JSON.parse(readFileSync(job.definitionsFile, 'utf8')) as StateMachineDefinitions;
  const sfn = new LocalStepFunctions(definitions, handler, { workBudgetMs: FUNCTION_TIMEOUT_MS });
  const execution = await sfn.startExecution(scheduledExecutionName(job.scheduledTime), {
    'detail-type': 'Scheduled Event',
    source: 'aws.scheduler',
    time: job.scheduledTime,
    detail: {},
  });
  const wall = performance.now() - started;
  const manifestKey = (execution.output as { manifestKey?: string } | undefined)?.manifestKey;
  const rt = await getRuntime();
  const m = manifestKey ? await getJson<Manifest>(rt.s3, rt.config.bucket, manifestKey) : undefined;
  await closeRuntime();
  if (execution.status !== 'SUCCEEDED' || m === undefined) {
    return failedResult(
      `${execution.error?.Error ?? 'NoManifest'}: ${execution.error?.Cause ?? 'no manifest'}`,
    );
  }
  // Both copies in `both` mode: what the run stored.
  const files = [...m.files.sessions, ...m.files.pseudonymized_sessions];
  return finish(started, {
    ok: true,
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
