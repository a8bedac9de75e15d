/**
 * `npx tsx scripts/bench-response-bounds.ts` — what one hostile response costs the job.
 * Prints numbers; asserts nothing.
 *
 * - Peak RSS of a process whose client receives a 200 MB body: with the limit effectively off
 *   (EXPORT_MAX_RESPONSE_BYTES at its 1 GiB maximum: the client buffers everything, as before
 *   the limit existed) and at the default 64 MiB.
 * - Time to fail a body trickling in at 1 byte per second (150 bytes): with the total deadline
 *   effectively off (900 s: only the idle timeout, as before) and at the default 30 s.
 *
 * The fake API runs in its own process; each probe runs in a fresh process so its peak RSS
 * (getrusage maxrss) is its own.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { createSessionsClient } from '../lambda/moonkey/sessions-client';
import { freePort, startChildServer } from '../local/child-server';
import type { FaultStep } from '../local/fake-moonkey-api';

const MIB = 1024 * 1024;
const KEY = 'sk_test_local';

interface Probe {
  readonly label: string;
  readonly apiUrl: string;
  readonly step: FaultStep;
  readonly maxResponseBytes: number;
  readonly requestTotalTimeoutMs: number;
}

/** One call in this process; prints {rss, ms, outcome} as JSON. */
async function probe(p: Probe): Promise<void> {
  const user = `bench_${process.pid}`;
  await fetch(`${p.apiUrl}/_fake/configure`, {
    method: 'POST',
    body: JSON.stringify({ faults: { [user]: [p.step] } }),
  });
  const baselineMb = process.memoryUsage().rss / MIB;
  const client = createSessionsClient({
    apiUrl: p.apiUrl,
    apiKey: KEY,
    connections: 1,
    requestTimeoutMs: 10_000,
    requestTotalTimeoutMs: p.requestTotalTimeoutMs,
    maxResponseBytes: p.maxResponseBytes,
  });
  const started = performance.now();
  const outcome = await client.fetchSessions(user, new AbortController().signal).then(
    () => 'ok',
    (error: Error) => `${error.name}: ${error.message.slice(0, 90)}`,
  );
  const ms = performance.now() - started;
  await client.close();
  const peakMb = process.resourceUsage().maxRSS / 1024;
  console.log(JSON.stringify({ baselineMb, peakMb, ms, outcome }));
}

async function main(): Promise<void> {
  const port = await freePort();
  const apiUrl = `http://127.0.0.1:${port}`;
  const root = join(__dirname, '..');
  const tsx = join(root, 'node_modules', '.bin', 'tsx');
  const api = await startChildServer({
    name: 'fake MoonKey API',
    command: tsx,
    args: [join(root, 'local', 'fake-moonkey-api-main.ts')],
    env: { ...process.env, FAKE_API_PORT: String(port), FAKE_API_KEY: KEY },
    ready: async () => (await fetch(`${apiUrl}/_fake/stats`)).ok,
  });
  const huge: FaultStep = { kind: 'huge-body', bytes: 200 * 1000 * 1000 };
  const trickle: FaultStep = { kind: 'trickle', intervalMs: 1000, bytes: 150 };
  const probes: Probe[] = [
    {
      label: '200 MB body, limit off (1 GiB)',
      apiUrl,
      step: huge,
      maxResponseBytes: 1024 * MIB,
      requestTotalTimeoutMs: 30_000,
    },
    {
      label: '200 MB body, limit 64 MiB (default)',
      apiUrl,
      step: huge,
      maxResponseBytes: 64 * MIB,
      requestTotalTimeoutMs: 30_000,
    },
    {
      label: '150 B at 1 B/s, total deadline off (900 s)',
      apiUrl,
      step: trickle,
      maxResponseBytes: 64 * MIB,
      requestTotalTimeoutMs: 900_000,
    },
    {
      label: '150 B at 1 B/s, total deadline 30 s (default)',
      apiUrl,
      step: trickle,
      maxResponseBytes: 64 * MIB,
      requestTotalTimeoutMs: 30_000,
    },
  ];
  const only = process.argv[2];
  try {
    for (const p of probes) {
      if (only !== undefined && !p.label.includes(only)) continue;
      const out = spawnSync(tsx, [__filename, '--probe', JSON.stringify(p)], { encoding: 'utf8' });
      const line = out.stdout.trim().split('\n').pop() ?? '';
      try {
        const r = JSON.parse(line) as { baselineMb: number; peakMb: number; ms: number; outcome: string };
        console.log(
          `${p.label.padEnd(48)} baseline RSS ${r.baselineMb.toFixed(0).padStart(4)} MB  peak RSS ${r.peakMb.toFixed(0).padStart(5)} MB  ${(r.ms / 1000).toFixed(1).padStart(6)} s  ${r.outcome}`,
        );
      } catch {
        console.log(`${p.label}: probe failed\n${out.stdout}\n${out.stderr}`);
      }
    }
  } finally {
    await api.stop();
  }
}

if (process.argv[2] === '--probe') {
  void probe(JSON.parse(process.argv[3] ?? '{}') as Probe);
} else {
  void main();
}
