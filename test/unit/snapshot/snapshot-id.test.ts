import { isRunId, newRunId, partitionDate } from '../../../lambda/snapshot/snapshot-id';

describe('partitionDate', () => {
  it('is the UTC date of the snapshot time, in seconds', () => {
    expect(partitionDate(Date.parse('2026-11-26T23:59:59Z') / 1000)).toBe('2026-11-26');
    expect(partitionDate(Date.parse('2026-11-27T00:00:00Z') / 1000)).toBe('2026-11-27');
  });
});

describe('newRunId', () => {
  const at = new Date('2026-11-26T02:00:04.512Z');

  it('pads a short suffix to six characters and keeps only letters and digits, lower-cased', () => {
    expect(newRunId(at, 'A-b')).toBe('r20261126T020004512Z-ab0000');
  });

  it('keeps the first six characters of a long suffix (an execution name)', () => {
    expect(newRunId(at, 'Exec_1234-abcdef')).toBe('r20261126T020004512Z-exec12');
  });

  it('draws a random suffix when none is given: two runs in the same millisecond differ', () => {
    const ids = new Set(Array.from({ length: 20 }, () => newRunId(at)));

    expect(ids.size).toBe(20);
    for (const id of ids) expect(id).toMatch(/^r20261126T020004512Z-[0-9a-f]{6}$/);
  });

  it('sorts by start time as a plain string, down to the millisecond', () => {
    const ids = ['2026-11-26T02:00:04.511Z', '2026-11-26T02:00:04.512Z', '2026-11-26T10:00:00.000Z'].map(
      (time) => newRunId(new Date(time), 'zzzzzz'),
    );

    expect([...ids].sort()).toEqual(ids);
    expect(newRunId(new Date('2026-11-26T02:00:04.511Z'), 'zzzzzz') < newRunId(at, '000000')).toBe(true);
  });
});

describe('isRunId', () => {
  it('accepts what newRunId makes and nothing else', () => {
    expect(isRunId(newRunId(new Date()))).toBe(true);
    expect(isRunId('r20261126T020004512Z-ab0000')).toBe(true);
    for (const bad of [
      '',
      'r20261126T020004512Z-ab000',
      'r20261126T020004512Z-ab00000',
      'r20261126T020004512Z-AB0000',
      'x20261126T020004512Z-ab0000',
      'r2026112T020004512Z-ab0000',
      'r20261126T02000451Z-ab0000',
      'r20261126T020004512-ab0000',
      'r20261126T020004512Z_ab0000',
      ' r20261126T020004512Z-ab0000',
      'r20261126T020004512Z-ab0000 ',
      'notes',
    ])
      expect(isRunId(bad)).toBe(false);
  });
});
