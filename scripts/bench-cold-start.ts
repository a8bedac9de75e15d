/**
 * `npx tsx scripts/bench-cold-start.ts [--runs N]`
 *
 * Cold start of the Lambda bundle: lambda/handlers/handler.ts bundled and minified by esbuild twice,
 * once with the AWS SDK inside the bundle and once with `@aws-sdk/*` external (the Lambda
 * runtime ships SDK v3; here it resolves from node_modules). Each run is a fresh `node` process
 * that loads the bundle and initializes (config + API key + clients, what the first invocation
 * does before it scans), N times; prints medians and the bundle sizes.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const ROOT = resolve(__dirname, '..');
const OUT = join(ROOT, '.bench-data', 'cold-start');

const PROBE = `
const t0 = performance.now();
const mod = require(process.argv[2]);
const t1 = performance.now();
mod.getRuntime().then(async (rt) => {
  const t2 = performance.now();
  await rt.close();
  const rss = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(JSON.stringify({ boot: t0, load: t1 - t0, init: t2 - t1, total: t2, rss }));
});
`;

const ENV = {
  PATH: process.env.PATH ?? '',
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'local',
  AWS_SECRET_ACCESS_KEY: 'local',
  USERS_TABLE_NAME: 'users',
  EXPORT_BUCKET_NAME: 'moonkey-exports',
  MOONKEY_API_KEY: 'sk_cold_start',
  MOONKEY_API_URL: 'http://127.0.0.1:9',
  METRICS_ENABLED: 'false',
  LOG_LEVEL: 'WARN',
};

interface Sample {
  rss: number;
  boot: number;
  load: number;
  init: number;
  total: number;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
};

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { runs: { type: 'string', default: '15' } }, strict: true });
  const runs = Number(values.runs);
  mkdirSync(OUT, { recursive: true });
  const probe = join(OUT, 'probe.cjs');
  writeFileSync(probe, PROBE);
  const variants = [
    { name: 'AWS SDK bundled', file: 'handler-bundled.js', external: [] as string[], sourceMaps: false },
    {
      name: 'AWS SDK external (runtime)',
      file: 'handler-sdk-external.js',
      external: ['@aws-sdk/*'],
      sourceMaps: false,
    },
    // What infra/constructs/export-function.ts deploys today: a source map beside the bundle
    // and NODE_OPTIONS=--enable-source-maps.
    {
      name: 'bundled + source map, --enable-source-maps',
      file: 'handler-bundled-sourcemap.js',
      external: [] as string[],
      sourceMaps: true,
    },
  ];
  const rows: string[][] = [];
  for (const variant of variants) {
    const outfile = join(OUT, variant.file);
    await build({
      entryPoints: [join(ROOT, 'lambda/handlers/handler.ts')],
      outfile,
      bundle: true,
      minify: true,
      platform: 'node',
      target: 'node20',
      format: 'cjs',
      external: variant.external,
      sourcemap: variant.sourceMaps,
      sourcesContent: false,
      logLevel: 'warning',
    });
    const bytes = statSync(outfile).size;
    const gz = gzipSync(readFileSync(outfile)).length;
    const samples: Sample[] = [];
    for (let i = 0; i < runs + 1; i++) {
      const started = performance.now();
      const flags = variant.sourceMaps ? ['--enable-source-maps'] : [];
      const out = spawnSync(process.execPath, [...flags, probe, outfile], { env: ENV, encoding: 'utf8' });
      const wall = performance.now() - started;
      if (out.status !== 0) throw new Error(`${variant.name}: probe failed: ${out.stderr}`);
      const sample = JSON.parse(out.stdout) as Sample;
      // The first run warms the page cache; it is not counted.
      if (i > 0) samples.push({ ...sample, total: wall });
    }
    rows.push([
      variant.name,
      `${(bytes / 1024).toFixed(0)} KiB (${(gz / 1024).toFixed(0)} KiB gzip)`,
      median(samples.map((s) => s.boot)).toFixed(0),
      median(samples.map((s) => s.load)).toFixed(0),
      median(samples.map((s) => s.init)).toFixed(0),
      median(samples.map((s) => s.boot + s.load + s.init)).toFixed(0),
      median(samples.map((s) => s.total)).toFixed(0),
      (median(samples.map((s) => s.rss)) / (1024 * 1024)).toFixed(0),
    ]);
  }
  const header = [
    'bundle (esbuild, minified)',
    'size',
    'node boot ms',
    'load ms',
    'init ms',
    'boot+load+init ms',
    'process wall ms',
    'peak RSS MB',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (cells: string[]) => `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  console.log(`Cold start, median of ${runs} fresh processes; Node ${process.version}`);
  console.log(fmt(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const row of rows) console.log(fmt(row));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
