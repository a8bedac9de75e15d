import { InvalidPhaseInputError } from '../../../lambda/core/errors';
import type { RunPlan } from '../../../lambda/run/run-plan';
import { decodeCursor, encodeCursor, type WorkCursor } from '../../../lambda/run/work-cursor';

const scanPlan = { users: { kind: 'scan' } } as unknown as RunPlan;
const listPlan = { users: { kind: 'list', userIds: ['user_a', 'user_b'] } } as unknown as RunPlan;
const scanKey = { user_id: { S: 'user_2Qx7bN1cW0kVd9Lr4sT8yZaHfEj' } };

/** A page of user ids as long as a real one (`user_` + 27 characters, EXPORT_SCAN_PAGE_SIZE's default). */
const pageOfIds = Array.from({ length: 1_000 }, (_, i) => `user_${String(i).padStart(27, '0')}`);

describe('encodeCursor and decodeCursor', () => {
  it.each<[string, WorkCursor]>([
    ['a scan key', { kind: 'scan', key: scanKey }],
    ['a list offset', { kind: 'list', offset: 500 }],
    ['a hand-over, then a scan key', { kind: 'handover', users: 17, after: { kind: 'scan', key: scanKey } }],
    [
      'a hand-over, then a list offset',
      { kind: 'handover', users: 3, after: { kind: 'list', offset: 1000 } },
    ],
    ['a hand-over at the end of the segment', { kind: 'handover', users: 1, after: null }],
  ])('gives back %s as it was encoded', (_, cursor) => {
    const text = encodeCursor(cursor);

    expect(decodeCursor(text, scanPlan)).toEqual(cursor);
  });

  it('reads offset 0 of a listed audit as a cursor like any other', () => {
    expect(decodeCursor('{"kind":"list","offset":0}', listPlan)).toEqual({ kind: 'list', offset: 0 });
  });

  it('quotes at most 200 characters of a cursor it refuses', () => {
    const text = `{"kind":"resume","junk":"${'x'.repeat(500)}"}`;

    expect(() => decodeCursor(text, scanPlan)).toThrow(
      new InvalidPhaseInputError(`slice.cursor is not a cursor this job wrote: ${text.slice(0, 200)}`),
    );
  });

  it('reads no cursor as the start of the walk: a Scan, or offset 0 of a listed audit', () => {
    expect(encodeCursor(undefined)).toBeNull();
    expect(decodeCursor(null, scanPlan)).toEqual({ kind: 'scan', key: undefined });
    expect(decodeCursor(null, listPlan)).toEqual({ kind: 'list', offset: 0 });
  });

  it('keeps a hand-over of a whole page of users as small as any cursor: the ids stay in S3', () => {
    const text = encodeCursor({
      kind: 'handover',
      users: pageOfIds.length,
      after: { kind: 'scan', key: scanKey },
    });

    expect(text).not.toContain(pageOfIds[0]);
    expect(text?.length).toBeLessThan(120);
  });

  it.each([
    ['not JSON', '{"kind":'],
    ['an unknown kind', '{"kind":"resume","offset":1}'],
    ['JSON null', 'null'],
    ['a cursor without its kind', '{"key":{"user_id":{"S":"u"}}}'],
    ['a scan without a key', '{"kind":"scan"}'],
    ['a scan whose key is null', '{"kind":"scan","key":null}'],
    ['a hand-over without its kind', '{"users":2,"after":null}'],
    ['a negative offset', '{"kind":"list","offset":-1}'],
    ['a hand-over of no users', '{"kind":"handover","users":0,"after":null}'],
    ['a hand-over of a fractional count', '{"kind":"handover","users":1.5,"after":null}'],
    ['a hand-over without what comes after', '{"kind":"handover","users":2}'],
    [
      'a hand-over followed by another',
      '{"kind":"handover","users":2,"after":{"kind":"handover","users":1,"after":null}}',
    ],
  ])('refuses %s, quoting the cursor', (_, text) => {
    const decode = () => decodeCursor(text, scanPlan);

    expect(decode).toThrow(InvalidPhaseInputError);
    expect(decode).toThrow(`slice.cursor is not a cursor this job wrote: ${text}`);
  });
});
