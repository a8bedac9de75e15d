import { sessionItemSpans } from '../../../lambda/moonkey/session-item-spans';
import { generator } from '../../../local/fake-sessions';

/**
 * The raw-text shortcut must never change what is exported: for any body, the spans either
 * decline (undefined) or each span is one line that parses to exactly the item JSON.parse sees.
 * Random bodies with hostile strings (quotes, backslashes, brackets, unicode escapes, keys that
 * spell "sessions") and random whitespace, from a seeded generator so a failure replays.
 */
const PIECES = [
  '"',
  '\\',
  '\\"',
  '\\\\',
  '{',
  '}',
  '[',
  ']',
  ':',
  ',',
  'sessions',
  '\u2028',
  'é',
  ' ',
  'a',
  '\u0000',
];

function randomValue(rand: () => number, depth: number): unknown {
  const roll = rand();
  if (depth > 3 || roll < 0.3) {
    let s = '';
    for (let i = Math.floor(rand() * 6); i > 0; i--) s += PIECES[Math.floor(rand() * PIECES.length)];
    return s;
  }
  if (roll < 0.4) return Math.floor(rand() * 1e10);
  if (roll < 0.45) return rand() < 0.5 ? null : true;
  if (roll < 0.7) return Array.from({ length: Math.floor(rand() * 3) }, () => randomValue(rand, depth + 1));
  return randomObject(rand, depth + 1);
}

function randomObject(rand: () => number, depth: number): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = Math.floor(rand() * 4); i > 0; i--)
    out[String(randomValue(rand, 9))] = randomValue(rand, depth);
  return out;
}

/** JSON.stringify, with random spaces around structural characters outside strings. */
function spaced(rand: () => number, value: unknown): string {
  const compact = JSON.stringify(value);
  let out = '';
  let inString = false;
  for (let i = 0; i < compact.length; i++) {
    const c = compact[i] as string;
    out += c;
    if (c === '"') inString = !inString;
    else if (c === '\\' && inString) out += compact[++i];
    if (!inString && '{}[],:'.includes(c) && rand() < 0.2) out += ' ';
  }
  return out;
}

describe('sessionItemSpans on random bodies', () => {
  it('either declines or finds exactly the items JSON.parse finds, one line each', () => {
    const rand = generator(20261126);
    let mapped = 0;
    for (let n = 0; n < 3000; n++) {
      const sessions = Array.from({ length: Math.floor(rand() * 4) }, () => randomObject(rand, 0));
      const body: Record<string, unknown> = { sessions };
      if (rand() < 0.3) body[String(randomValue(rand, 9))] = randomValue(rand, 0);
      const text = rand() < 0.5 ? JSON.stringify(body) : spaced(rand, body);

      const spans = sessionItemSpans(text);

      if (spans === undefined) continue;
      mapped++;
      const parsed = (JSON.parse(text) as { sessions: unknown[] }).sessions;
      expect(spans.length / 2).toBe(parsed.length);
      for (let i = 0; i < spans.length; i += 2) {
        const raw = text.slice(spans[i], spans[i + 1]);
        expect(raw).not.toMatch(/[\n\r]/);
        expect(JSON.parse(raw)).toEqual(parsed[i / 2]);
      }
    }
    // The shortcut must actually apply to ordinary bodies, or this test proves nothing.
    expect(mapped).toBeGreaterThan(1500);
  });
});
