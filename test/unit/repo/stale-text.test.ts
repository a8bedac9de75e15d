/**
 * Text that points at things: comments and docs must not send a reader to an issue number (the
 * tracker is not part of the code) or to a source file that does not exist (renamed, never
 * written). Checked over every source and Markdown file of the repository.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';

const ROOT = join(__dirname, '../../..');
const SKIP = new Set([
  'node_modules',
  'cdk.out',
  '.git',
  'reports',
  '.local-data',
  '.bench-data',
  'fixtures',
]);
const TEXT = /\.(ts|mjs|cjs|md|java)$/;

function walk(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (SKIP.has(name) || name.startsWith('.stryker-tmp')) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (TEXT.test(name)) out.push(path);
  }
  return out;
}

const files = walk(ROOT);
const basenames = new Set(files.map((f) => basename(f)));
const THIS_FILE = relative(ROOT, __filename);
/** Names that are not files of this repository, each for a reason. */
const NOT_OURS = new Set([
  'probe.cjs', // written by scripts/bench-cold-start.ts at run time
  'sql/select.md', // Trino's documentation, cited by the Trino-grammar tests
  'language/reserved.md', // the same
]);

/** Source-file names in the text: `dir/name.ts` paths and bare `name.ts` names. */
const FILE_REFERENCE = /(?<![\w./@-])((?:[\w-]+\/)*[\w-]+\.(?:ts|mjs|cjs|md|java))(?![\w/])/g;

describe('text that points at things', () => {
  it('reads the repository', () => {
    expect(files.length).toBeGreaterThan(100);
  });

  it('names no issue number', () => {
    const found = files
      .filter((f) => relative(ROOT, f) !== THIS_FILE)
      .flatMap((f) =>
        readFileSync(f, 'utf8')
          .split('\n')
          .map((line, i) => ({ at: `${relative(ROOT, f)}:${i + 1}`, line }))
          .filter(({ line }) => /\bissues? #?\d+\b/i.test(line)),
      );
    expect(found).toEqual([]);
  });

  it('names only files that exist', () => {
    const missing: string[] = [];
    for (const file of files.filter((f) => relative(ROOT, f) !== THIS_FILE)) {
      const text = readFileSync(file, 'utf8');
      for (const match of text.matchAll(FILE_REFERENCE)) {
        const name = match[1] as string;
        if (NOT_OURS.has(name)) continue;
        const exists = name.includes('/')
          ? existsSync(join(ROOT, name)) || files.some((f) => f.endsWith(`/${name}`))
          : basenames.has(name);
        if (!exists) missing.push(`${relative(ROOT, file)}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});
