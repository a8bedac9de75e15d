/**
 * The manifest's `error.type` and a failed user's `error_type` are `error.name`. The deployed
 * bundle is minified (infra/constructs/export-function.ts) and minifying renames classes, so a
 * name derived from the class (`new.target.name`, `constructor.name`) reads `t` in production.
 * This builds the job's error modules the same way and checks every exported error class.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { buildSync } from 'esbuild';
import * as coreErrors from '../../../lambda/core/errors';

const LAMBDA = join(__dirname, '../../../lambda');

/** Every `export class XxxError` written in lambda/, with the file that declares it. */
function errorClassesInSource(): { name: string; file: string }[] {
  const files = readdirSync(LAMBDA, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  return files.flatMap((file) =>
    [...readFileSync(join(LAMBDA, file), 'utf8').matchAll(/^export class (\w+Error) extends /gm)].map(
      (m) => ({ name: m[1] as string, file }),
    ),
  );
}

describe('error names in the minified bundle', () => {
  const classes = errorClassesInSource();
  let dir: string;
  let bundle: Record<string, new (...args: unknown[]) => Error>;

  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'error-names-'));
    const files = [...new Set(classes.map((c) => c.file))];
    const entry = files.map(
      (f) => `export * from './${relative(LAMBDA, join(LAMBDA, f)).replace(/\.ts$/, '')}';`,
    );
    const out = join(dir, 'errors.js');
    // The stack's options that matter here: CommonJS, minified, no keepNames.
    buildSync({
      stdin: { contents: entry.join('\n'), resolveDir: LAMBDA, loader: 'ts' },
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: 'node20',
      minify: true,
      outfile: out,
      logLevel: 'silent',
    });
    writeFileSync(join(dir, 'package.json'), '{}');
    bundle = require(out);
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('finds the error classes of lambda/', () => {
    expect(classes.map((c) => c.name)).toEqual(
      expect.arrayContaining(['ExportError', 'ApiAuthError', 'RetriesExhaustedError', 'ApiThrottledError']),
    );
  });

  it('renames the classes themselves (which is why the names must be literal)', () => {
    const renamed = classes.filter((c) => bundle[c.name]?.name !== c.name);
    expect(renamed.length).toBeGreaterThan(0);
  });

  it.each(classes.map((c) => [c.name, c.file]))('%s (%s) keeps its name when minified', (name) => {
    const Class = bundle[name];
    expect(Class).toBeDefined();
    // Arguments every constructor accepts: a message or status first, an options bag with a cause after.
    const cause = new Error('cause');
    const error = new (Class as new (...args: unknown[]) => Error)('message', { cause }, { cause });
    expect(error.name).toBe(name);
    expect(error).toBeInstanceOf(Error);
  });
});

describe('error names in the source', () => {
  // The same contract on the modules as the job imports them: the name a manifest, a failed-users
  // line and Step Functions' Error field carry is the class's own, and the cause is kept.
  const classes = (Object.entries(coreErrors) as [string, unknown][])
    .filter(([name, value]) => typeof value === 'function' && name.endsWith('Error'))
    .map(([name, value]) => [name, value as new (...args: unknown[]) => Error] as const);

  it('covers every error class of core/errors.ts', () => {
    expect(classes.length).toBe(
      errorClassesInSource().filter((c) => c.file === join('core', 'errors.ts')).length,
    );
  });

  it.each(classes)('%s is named after its class', (name, Class) => {
    const cause = new Error('cause');
    const error = new Class('message', { cause }, { cause });
    expect(error.name).toBe(name);
    expect(error).toBeInstanceOf(Error);
    expect(String(error)).toMatch(new RegExp(`^${name}: `));
  });
});
