import { rawSessionItems, sessionItemSpans } from '../../../lambda/moonkey/session-item-spans';

/** The texts the spans point at, or undefined when the scanner declines. */
const items = (text: string) => {
  const spans = sessionItemSpans(text);
  if (spans === undefined) return undefined;
  const out: string[] = [];
  for (let i = 0; i < spans.length; i += 2) out.push(text.slice(spans[i], spans[i + 1]));
  return out;
};

describe('sessionItemSpans (raw text of each session item)', () => {
  it('finds each item of a compact response exactly, nested objects, arrays and escapes included', () => {
    const a = { id: 'a', factors: [{ method: { x: [1, { y: '}]' }] } }], note: 'quote " and \\ and {[' };
    const b = { id: 'b', device_fingerprint: { ip: '' }, ends_in_slash: 'c:\\', quoted: '\\"}' };
    const text = JSON.stringify({ sessions: [a, b] });
    expect(items(text)).toEqual([JSON.stringify(a), JSON.stringify(b)]);
    expect(items(text)?.map((raw) => JSON.parse(raw))).toEqual([a, b]);
  });

  it.each([
    ['one', '\\'],
    ['two', '\\\\'],
    ['three', '\\\\\\'],
  ])(
    'ends a string after %s trailing backslash(es) where JSON does, with brackets in the next one',
    (_count, slashes) => {
      const a = { id: 'a', path: `dir${slashes}`, next: '}]{[', quoted: `${slashes}"}` };
      const b = { id: 'b', last: slashes };
      const text = JSON.stringify({ sessions: [a, b] });

      expect(items(text)).toEqual([JSON.stringify(a), JSON.stringify(b)]);
    },
  );

  it('takes a top-level value that reads "sessions" for a value, not for the key', () => {
    expect(items('{"kind":"sessions","sessions":[{"id":"a"}]}')).toEqual(['{"id":"a"}']);
  });

  it('keeps spaces as the API sent them and skips other top-level keys', () => {
    const text = '{ "next" : "x:y", "meta": {"sessions": [1]}, "sessions" : [ {"id": "a" } , {"id":"b"} ] }';
    expect(items(text)).toEqual(['{"id": "a" }', '{"id":"b"}']);
    expect(JSON.parse(`[${items(text)?.join(',')}]`)).toEqual(JSON.parse(text).sessions);
  });

  it('skips tabs between tokens like spaces', () => {
    const text = '{"sessions":\t[\t{"id":"a"},\t{"id":"b"}\t]\t}';
    expect(items(text)).toEqual(['{"id":"a"}', '{"id":"b"}']);
  });

  it('reads the keys after the sessions array, nested values included, and keeps them out of the items', () => {
    const text =
      '{"sessions":[{"id":"a"},{"id":"b","tags":[{"k":1}]}],"meta":{"pages":[{"n":1}],"s":"]}"},"next":null}';
    expect(items(text)).toEqual(['{"id":"a"}', '{"id":"b","tags":[{"k":1}]}']);
  });

  it('finds sessions only under its own key, not under a longer or a same-length one', () => {
    expect(items('{"sessionsX":[{"id":"a"}]}')).toBeUndefined();
    expect(items('{"sessionz":[{"id":"a"}]}')).toBeUndefined();
    expect(items('{"sessionz":[{"id":"z"}],"sessions":[{"id":"a"}]}')).toEqual(['{"id":"a"}']);
  });

  it('returns no items for an empty list', () => {
    expect(items('{"sessions":[]}')).toEqual([]);
  });

  it('declines anything it cannot map one to one, so the caller re-serializes instead', () => {
    // More than one line: an NDJSON record must be one line.
    expect(items('{"sessions":[\n{"id":"a"}\n]}')).toBeUndefined();
    expect(items('{"sessions":[{"id":\r"a"}]}')).toBeUndefined();
    // JSON.parse keeps the last of repeated keys; an escaped key may spell "sessions".
    expect(items('{"sessions":[{"id":"a"}],"sessions":[{"id":"b"}]}')).toBeUndefined();
    expect(items('{"sessions":[{"id":"a"}],"sess\\u0069ons":[{"id":"b"}]}')).toBeUndefined();
    // Elements that are not objects, a non-array value, no sessions key, a truncated body.
    expect(items('{"sessions":[{"id":"a"}, 3]}')).toBeUndefined();
    expect(items('{"sessions":["a"]}')).toBeUndefined();
    expect(items('{"sessions":null}')).toBeUndefined();
    expect(items('{"sessions":{}}')).toBeUndefined();
    expect(items('{"items":[{"id":"a"}]}')).toBeUndefined();
    expect(items('{"sessions":[{"id":"a"}')).toBeUndefined();
    expect(items('[{"sessions":[{"id":"a"}]}]')).toBeUndefined();
    // An array as an element, an unterminated string, a stray closing brace.
    expect(items('{"sessions":[[{"id":"a"}]]}')).toBeUndefined();
    expect(items('{"sessions":[{"id":"a}]}')).toBeUndefined();
    expect(items('{"sessions":[{"id":"a"}]}}')).toBeUndefined();
  });
});

describe('rawSessionItems', () => {
  it('gives the text of each parsed item, by index', () => {
    const text = '{"sessions":[{"id":"a", "n":1.50},{"id":"b"}]}';
    expect(rawSessionItems(text, (JSON.parse(text) as { sessions: unknown[] }).sessions)).toEqual([
      '{"id":"a", "n":1.50}',
      '{"id":"b"}',
    ]);
  });

  it('gives nothing for no items, an unindexable text, or a count that does not match', () => {
    expect(rawSessionItems('{"sessions":[]}', [])).toBeUndefined();
    expect(rawSessionItems('{"sessions":[{"id":"a"}]\n}', [{ id: 'a' }])).toBeUndefined();
    expect(rawSessionItems('{"sessions":[{"id":"a"}]}', [{ id: 'a' }, { id: 'b' }])).toBeUndefined();
    expect(rawSessionItems('{"sessions":[{"id":"a"},{"id":"b"}]}', [{ id: 'a' }])).toBeUndefined();
  });
});
