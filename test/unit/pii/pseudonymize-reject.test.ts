import { createPolicyApplier } from '../../../lambda/pii/apply-policy';
import { createTokenizer } from '../../../lambda/pii/hmac-token';
import { PII_PRESETS } from '../../../lambda/pii/pii-policy';
import { hasKnownShape, pseudonymizeReject } from '../../../lambda/pii/pseudonymize-reject';

const tokenize = createTokenizer(Buffer.from('a-test-key-of-thirty-two-bytes!!'));
const apply = createPolicyApplier(PII_PRESETS.pseudonymize, tokenize);
const PHONE = '+14155550123';
const reject = (item: unknown, truncated = false) => {
  const text = typeof item === 'string' ? item : JSON.stringify(item);
  return { item_raw: text, item_length: text.length + (truncated ? 10 : 0), item_truncated: truncated };
};

describe('hasKnownShape', () => {
  it('accepts items whose personal fields sit where the schema puts them, or are absent', () => {
    expect(hasKnownShape({})).toBe(true);
    expect(hasKnownShape({ factors: [], device_fingerprint: {} })).toBe(true);
    expect(hasKnownShape({ factors: [{}, { method: {} }] })).toBe(true);
  });

  it('refuses containers of another type, where the policy would not look', () => {
    expect(hasKnownShape({ factors: { method: { phone_number: PHONE } } })).toBe(false);
    expect(hasKnownShape({ factors: [{ method: [{ phone_number: PHONE }] }] })).toBe(false);
    expect(hasKnownShape({ factors: [{ method: null }] })).toBe(false);
    expect(hasKnownShape({ factors: [null] })).toBe(false);
    expect(hasKnownShape({ factors: [[{ method: {} }]] })).toBe(false);
    expect(hasKnownShape({ device_fingerprint: [PHONE] })).toBe(false);
    expect(hasKnownShape({ device_fingerprint: null })).toBe(false);
    expect(hasKnownShape({ device_fingerprint: 'ip' })).toBe(false);
  });
});

describe('pseudonymizeReject', () => {
  it('gives the invalid item with the policy applied, and not the raw phone number', () => {
    const item = { user_id: 'u1', factors: [{ method: { phone_number: '+1 415 555 0123' } }] };
    const out = pseudonymizeReject(reject(item), apply);
    expect(out).toEqual({
      item: JSON.stringify({ user_id: 'u1', factors: [{ method: { phone_number: tokenize(PHONE) } }] }),
      item_withheld: null,
      item_length: JSON.stringify(item).length,
    });
    expect(JSON.stringify(out)).not.toContain('415');
  });

  it('withholds a cut text, text that is not JSON, and an item of unknown shape', () => {
    const cut = reject({ factors: [{ method: { phone_number: PHONE } }] }, true);
    expect(pseudonymizeReject(cut, apply)).toEqual({
      item: null,
      item_withheld: 'truncated',
      item_length: cut.item_length,
    });
    expect(pseudonymizeReject(reject(`{"phone_number":"${PHONE}"`), apply).item_withheld).toBe('unparsable');
    expect(
      pseudonymizeReject(reject({ factors: { method: { phone_number: PHONE } } }), apply).item_withheld,
    ).toBe('shape');
    expect(pseudonymizeReject(reject(JSON.stringify(PHONE)), apply)).toEqual({
      item: null,
      item_withheld: 'shape',
      item_length: JSON.stringify(PHONE).length,
    });
    expect(pseudonymizeReject(reject([PHONE]), apply).item_withheld).toBe('shape');
  });

  it('withholds an item the policy output cannot be written for', () => {
    const failing = () => {
      throw new RangeError('Maximum call stack size exceeded');
    };
    expect(pseudonymizeReject(reject({}), failing)).toEqual({
      item: null,
      item_withheld: 'unparsable',
      item_length: 2,
    });
  });
});
