import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { MalformedResponseError } from '../../../lambda/core/errors';
import { REJECT_ITEM_CHARS, validateSessions } from '../../../lambda/moonkey/validate-sessions';

/** The vendor's own example response, read from the contract fixture (not retyped). */
const openapi = parse(readFileSync(join(__dirname, '../../fixtures/moonkey-openapi.yaml'), 'utf8'));
const example = openapi.paths['/v1/auth/sessions/list'].get.responses['200'].content['application/json']
  .examples.ListSessionsResp.value as { sessions: Record<string, unknown>[] };
const exampleUser = 'user_24wFP9pDa9YiMJLun94iKykoZs2';
const exampleSession = example.sessions[0] as Record<string, unknown>;
/** The valid items of a result, without their texts. */
const itemsOf = (valid: readonly { item: Record<string, unknown> }[]) => valid.map((v) => v.item);

describe('validateSessions', () => {
  it("accepts the document's own example, including its empty device_fingerprint.ip", () => {
    const result = validateSessions(exampleUser, example);

    expect(result.rejected).toEqual([]);
    expect(itemsOf(result.valid)).toEqual(example.sessions);
  });

  it('keeps fields the API adds later, at every level, exactly as sent', () => {
    const session = {
      ...exampleSession,
      risk_score: 0.2,
      device_fingerprint: { user_agent: 'ua', ip: '203.0.113.9', city: 'Lisbon' },
    };

    const { valid } = validateSessions(exampleUser, { sessions: [session], next_cursor: null });

    expect(valid).toEqual([{ item: session, raw: undefined }]);
    expect(valid[0]?.item).toBe(session);
  });

  it('quarantines an invalid item with its zod issues and exports its valid sibling', () => {
    const broken = { ...exampleSession, id: 'sess_broken', factors: [], started_at: 'yesterday' };

    const { valid, rejected } = validateSessions(exampleUser, { sessions: [exampleSession, broken] });

    expect(itemsOf(valid)).toEqual([exampleSession]);
    expect(rejected).toEqual([
      {
        user_id: exampleUser,
        reason: 'schema',
        item_raw: JSON.stringify(broken),
        item_length: JSON.stringify(broken).length,
        item_truncated: false,
        issues: expect.arrayContaining([
          expect.objectContaining({ path: 'started_at' }),
          expect.objectContaining({ path: 'factors' }),
        ]),
      },
    ]);
  });

  it('quarantines an item nested 100,000 deep as its text, cut to REJECT_ITEM_CHARS with its length', () => {
    const depth = 100_000;
    const deep = `{"id":"sess_deep","user_id":"${exampleUser}","factors":${'['.repeat(depth)}${']'.repeat(depth)}}`;

    const { valid, rejected } = validateSessions(exampleUser, {
      sessions: [exampleSession, JSON.parse(deep)],
    });

    expect(itemsOf(valid)).toEqual([exampleSession]);
    expect(rejected).toEqual([
      expect.objectContaining({
        reason: 'schema',
        item_raw: deep.slice(0, REJECT_ITEM_CHARS),
        item_length: deep.length,
        item_truncated: true,
      }),
    ]);
    expect(() => JSON.stringify(rejected)).not.toThrow();
  });

  it('accepts any finite number for a time, fractional or negative, as the contract (`type: number`) allows', () => {
    const odd = {
      ...exampleSession,
      started_at: 1643163802.25,
      expires_at: 0,
      last_active_at: -34766141.1495519,
      factors: [
        {
          delivery_channel: 'sms',
          type: 'otp',
          method: { method_id: 'm', method_type: 'email', last_verified_at: 0.5 },
        },
      ],
    };

    const { valid, rejected } = validateSessions(exampleUser, { sessions: [odd] });

    expect(rejected).toEqual([]);
    expect(itemsOf(valid)).toEqual([odd]);
  });

  it('quarantines a time that is not a number', () => {
    const { rejected } = validateSessions(exampleUser, {
      sessions: [{ ...exampleSession, updated_at: '1643163867' }],
    });

    expect(rejected).toEqual([
      expect.objectContaining({ issues: [expect.objectContaining({ path: 'updated_at' })] }),
    ]);
  });

  it('quarantines a session listed under another user', () => {
    const { valid, rejected } = validateSessions('user_someone_else', example);

    expect(valid).toEqual([]);
    expect(rejected[0]).toMatchObject({
      reason: 'user_id_mismatch',
      user_id: 'user_someone_else',
      issues: [
        { path: 'user_id', message: `session belongs to ${exampleUser}, listed under user_someone_else` },
      ],
    });
  });

  it('names a nested field of an invalid item by its dotted path', () => {
    const { rejected } = validateSessions(exampleUser, {
      sessions: [{ ...exampleSession, device_fingerprint: { user_agent: 'ua', ip: 7 } }],
    });

    expect(rejected[0]?.issues).toEqual([expect.objectContaining({ path: 'device_fingerprint.ip' })]);
  });

  it('quarantines the second copy of a session id within one response', () => {
    const { valid, rejected } = validateSessions(exampleUser, {
      sessions: [exampleSession, { ...exampleSession }],
    });

    expect(valid).toHaveLength(1);
    expect(rejected).toEqual([
      expect.objectContaining({
        reason: 'duplicate_session_id',
        issues: [
          { path: 'id', message: `session ${exampleSession.id} appears more than once in the response` },
        ],
      }),
    ]);
  });

  it('pairs each item with its text by position, valid or quarantined', () => {
    const other = { ...exampleSession, id: 'sess_other' };
    const broken = { ...exampleSession, id: 'sess_broken', factors: [] };
    const raw = ['{ "text": 0 }', '{ "text": 1 }', '{ "text": 2 }'];

    const { valid, rejected } = validateSessions(
      exampleUser,
      { sessions: [exampleSession, broken, other] },
      raw,
    );

    expect(valid).toEqual([
      { item: exampleSession, raw: raw[0] },
      { item: other, raw: raw[2] },
    ]);
    expect(rejected).toEqual([
      expect.objectContaining({
        reason: 'schema',
        item_raw: raw[1],
        item_length: raw[1]?.length,
        item_truncated: false,
      }),
    ]);
  });

  it('keeps a rejected item as the text it came in, cut to REJECT_ITEM_CHARS', () => {
    const long = `{"id":"x","pad":"${'p'.repeat(REJECT_ITEM_CHARS)}"}`;

    const { rejected } = validateSessions(exampleUser, { sessions: [{ id: 'x' }] }, [long]);

    expect(rejected).toEqual([
      expect.objectContaining({
        item_raw: long.slice(0, REJECT_ITEM_CHARS),
        item_length: long.length,
        item_truncated: true,
      }),
    ]);
  });

  it('accepts a user without sessions', () => {
    expect(validateSessions(exampleUser, { sessions: [] })).toEqual({ valid: [], rejected: [] });
  });

  it.each([
    ['no sessions field', { data: [] }],
    ['sessions not an array', { sessions: {} }],
    ['not an object', 'ok'],
    ['null', null],
  ])('treats a body with %s as a failed call', (_label, body) => {
    expect(() => validateSessions(exampleUser, body)).toThrow(MalformedResponseError);
  });

  it('says what is wrong with the envelope, naming the field or the body itself', () => {
    expect(() => validateSessions(exampleUser, { data: [] })).toThrow(
      /^response is not a \{ sessions: \[\.\.\.\] \} object: sessions \S.*$/,
    );
    expect(() => validateSessions(exampleUser, null)).toThrow(
      /^response is not a \{ sessions: \[\.\.\.\] \} object: body \S.*$/,
    );
  });
});
