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
    [
      'functions and symbols, as null elements and skipped members',
      { a: [() => 1, Symbol('s')], b: () => 1, c: Symbol('s'), d: 1 },
    ],
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

  it('writes a bigint (a reviver can make one) as its digits, where JSON.stringify throws', () => {
    expect(boundedJson({ n: 12345678901234567890n }, 100)).toEqual({
      text: '{"n":12345678901234567890}',
      length: 26,
    });
  });

  it('cuts inside a piece, and at a piece boundary, without a character too many', () => {
    const value = { key: 'value' };
    const whole = JSON.stringify(value);

    for (let limit = 0; limit <= whole.length + 1; limit++) {
      expect(boundedJson(value, limit)).toEqual({ text: whole.slice(0, limit), length: whole.length });
    }
  });

  it('writes a value nested 100,000 deep, which JSON.stringify cannot', () => {
    const depth = 100_000;
    const text = `{"factors":${'['.repeat(depth)}${']'.repeat(depth)}}`;
    const value: unknown = JSON.parse(text);
    expect(() => JSON.stringify(value)).toThrow(RangeError);

    expect(boundedJson(value, 100)).toEqual({ text: text.slice(0, 100), length: text.length });
  });
});
