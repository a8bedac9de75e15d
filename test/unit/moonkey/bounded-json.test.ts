import { boundedJson } from '../../../lambda/moonkey/bounded-json';

describe('boundedJson', () => {
  it.each([
    ['null', null],
    ['a string with escapes', 'a"b\\c\n\u2028é'],
    ['numbers', [0, -0, 1.5, -2e-7, 1e21, 123456789012345680000]],
    ['nested objects and arrays', { a: [1, { b: [], c: {} }, 'x'], d: { e: null, f: true }, '': false }],
    ['empty containers', [[], {}, [[]]]],
    ['undefined members and elements', { a: undefined, b: 1, c: [undefined, 2] }],
    ['non-finite numbers', { a: Number.NaN, b: [Number.POSITIVE_INFINITY] }],
  ])('writes %s exactly as JSON.stringify does', (_label, value) => {
    const expected = JSON.stringify(value);

    expect(boundedJson(value, 1_000_000)).toEqual({ text: expected, length: expected.length });
  });

  it('stops appending at the limit and still counts the whole length', () => {
    const value = { id: 'sess_x', padding: 'y'.repeat(1000) };

    const { text, length } = boundedJson(value, 20);

    expect(text).toBe(JSON.stringify(value).slice(0, 20));
    expect(length).toBe(JSON.stringify(value).length);
  });

  it('writes a value nested 100,000 deep, which JSON.stringify cannot', () => {
    const depth = 100_000;
    const text = `{"factors":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const value: unknown = JSON.parse(text);
    expect(() => JSON.stringify(value)).toThrow(RangeError);

    expect(boundedJson(value, 100)).toEqual({ text: text.slice(0, 100), length: text.length });
  });
});
