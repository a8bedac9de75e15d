import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { envShape } from '../../../lambda/core/config';

const ROOT = join(__dirname, '../../..');
const DOCS = readdirSync(join(ROOT, 'docs'))
  .filter((f) => f.endsWith('.md'))
  .map((f) => join(ROOT, 'docs', f));

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N} _-]/gu, '')
    .replaceAll(' ', '-');
}

/** The anchors of a Markdown file's headings, outside code blocks. */
function anchorsOf(file: string): Set<string> {
  const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
  return new Set([...text.matchAll(/^#{1,6} (.+)$/gm)].map((m) => anchorOf(m[1] ?? '')));
}

describe('README', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');

  it.each(Object.keys(envShape.shape))('documents %s in the configuration table', (variable) => {
    expect(readme).toContain(`| \`${variable}\` |`);
  });

  it.each(DOCS.map((f) => relative(ROOT, f)))('links %s', (doc) => {
    expect(readme).toContain(`](${doc})`);
  });
});

describe('links between the README and docs/', () => {
  it.each(['README.md', ...DOCS.map((f) => relative(ROOT, f))])(
    '%s links only to files and headings that exist',
    (name) => {
      const file = join(ROOT, name);
      const text = readFileSync(file, 'utf8').replace(/```[\s\S]*?```/g, '');
      const broken: string[] = [];
      for (const [, target = ''] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target)) continue;
        const [path = '', anchor] = target.split('#');
        const linked = path === '' ? file : join(dirname(file), path);
        if (!existsSync(linked)) broken.push(`${target}: no file`);
        else if (anchor !== undefined && !anchorsOf(linked).has(anchor))
          broken.push(`${target}: no such heading`);
      }
      expect(broken).toEqual([]);
    },
  );
});
