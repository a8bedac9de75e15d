import { createPolicyApplier } from '../../../lambda/pii/apply-policy';
import { createTokenizer } from '../../../lambda/pii/hmac-token';
import { PII_PRESETS, type PiiPolicy } from '../../../lambda/pii/pii-policy';

const KEY = Buffer.from('a-test-key-of-thirty-two-bytes!!');
const tokenize = createTokenizer(KEY);

function session() {
  return {
    id: 'sess_1',
    user_id: 'user_1',
    started_at: 1,
    factors: [
      {
        type: 'otp',
        delivery_channel: 'sms',
        method: {
          method_id: 'm1',
          method_type: 'phone_number',
          phone_number: '+1 415 222 2222',
          phone_number_id: 'pn_1',
        },
      },
      {
        type: 'otp',
        delivery_channel: 'email',
        method: { method_id: 'm2', method_type: 'email', email: ' Alice@Example.com', email_id: 'em_1' },
      },
      {
        type: 'wallet',
        delivery_channel: 'eth_wallet',
        method: {
          method_id: 'm3',
          method_type: 'wallet',
          wallet_public_address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
        },
      },
      {
        type: 'oauth',
        delivery_channel: 'google_oauth',
        method: { method_id: 'm4', method_type: 'oauth', provider_subject: '1098765' },
      },
    ],
    device_fingerprint: { ip: '::ffff:203.0.113.77', user_agent: 'Mozilla/5.0', extra: 'x' },
  };
}

const policy = (overrides: Partial<PiiPolicy>): PiiPolicy => ({ ...PII_PRESETS.pseudonymize, ...overrides });

describe('createPolicyApplier', () => {
  it('hashes every field of the pseudonymize preset after normalizing it', () => {
    const out = createPolicyApplier(PII_PRESETS.pseudonymize, tokenize)(session());
    expect(out).toEqual({
      ...session(),
      factors: [
        {
          ...session().factors[0],
          method: { ...session().factors[0]?.method, phone_number: tokenize('+14152222222') },
        },
        {
          ...session().factors[1],
          method: { ...session().factors[1]?.method, email: tokenize('alice@example.com') },
        },
        {
          ...session().factors[2],
          method: {
            ...session().factors[2]?.method,
            wallet_public_address: tokenize('0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed'),
          },
        },
        {
          ...session().factors[3],
          method: { ...session().factors[3]?.method, provider_subject: tokenize('1098765') },
        },
      ],
      device_fingerprint: { ip: tokenize('203.0.113.77'), user_agent: tokenize('Mozilla/5.0'), extra: 'x' },
    });
  });

  it('applies the analytics preset: ip truncated, user agent kept', () => {
    const out = createPolicyApplier(PII_PRESETS.analytics, tokenize)(session());
    expect(out.device_fingerprint).toEqual({ ip: '203.0.113.0/24', user_agent: 'Mozilla/5.0', extra: 'x' });
  });

  it('removes dropped fields and leaves the rest of the object', () => {
    const out = createPolicyApplier(PII_PRESETS.minimal, tokenize)(session()) as ReturnType<typeof session>;
    expect(out.device_fingerprint).toEqual({ extra: 'x' });
    const dropEmail = createPolicyApplier(
      policy({ email: { kind: 'drop' } }),
      tokenize,
    )(session()) as ReturnType<typeof session>;
    expect(dropEmail.factors[1]?.method).toEqual({ method_id: 'm2', method_type: 'email', email_id: 'em_1' });
  });

  it('keeps kept fields as they are, and shares untouched objects with the input', () => {
    const keepAll: PiiPolicy = {
      phone_number: { kind: 'keep' },
      email: { kind: 'keep' },
      wallet_public_address: { kind: 'keep' },
      provider_subject: { kind: 'keep' },
      ip: { kind: 'keep' },
      user_agent: { kind: 'keep' },
    };
    const input = session();
    const out = createPolicyApplier(keepAll, tokenize)(input) as ReturnType<typeof session>;
    expect(out).toEqual(session());
    expect(out.device_fingerprint).toBe(input.device_fingerprint);
    expect(out.factors[0]?.method).toBe(input.factors[0]?.method);
    const onlyIp = createPolicyApplier({ ...keepAll, ip: { kind: 'hash' } }, tokenize)(input) as ReturnType<
      typeof session
    >;
    expect(onlyIp.factors[0]?.method).toBe(input.factors[0]?.method);
    expect(onlyIp.device_fingerprint.user_agent).toBe('Mozilla/5.0');
  });

  it('never changes its input', () => {
    const input = session();
    createPolicyApplier(PII_PRESETS.minimal, tokenize)(input);
    createPolicyApplier(PII_PRESETS.pseudonymize, tokenize)(input);
    expect(input).toEqual(session());
  });

  it('keeps "" as "" under hash and truncate: an unknown IP is not one shared token', () => {
    const input = { ...session(), device_fingerprint: { ip: '', user_agent: '' } };
    expect(createPolicyApplier(PII_PRESETS.pseudonymize, tokenize)(input).device_fingerprint).toEqual({
      ip: '',
      user_agent: '',
    });
    expect(createPolicyApplier(PII_PRESETS.analytics, tokenize)(input).device_fingerprint).toEqual({
      ip: '',
      user_agent: '',
    });
  });

  it('removes values no action can make safe: a non-string, or an ip that cannot be truncated', () => {
    const input = {
      factors: [{ method: { phone_number: 14152222222, email: null } }],
      device_fingerprint: { ip: 'unknown', user_agent: 5 },
    };
    const out = createPolicyApplier(PII_PRESETS.analytics, tokenize)(input);
    expect(out).toEqual({ factors: [{ method: {} }], device_fingerprint: { user_agent: 5 } });
  });

  it('tolerates any shape (a quarantined item): leaves what holds no method or fingerprint', () => {
    const apply = createPolicyApplier(PII_PRESETS.pseudonymize, tokenize);
    expect(apply({ factors: 'x', device_fingerprint: ['1.2.3.4'] })).toEqual({
      factors: 'x',
      device_fingerprint: ['1.2.3.4'],
    });
    expect(apply({ factors: [null, 3, { method: 'x' }, { method: [1] }] })).toEqual({
      factors: [null, 3, { method: 'x' }, { method: [1] }],
    });
    expect(apply({})).toEqual({});
  });

  it('touches only the fields of each place: an ip in a method or a phone number in the fingerprint is not a field', () => {
    const apply = createPolicyApplier(PII_PRESETS.pseudonymize, tokenize);
    const input = { factors: [{ method: { ip: '1.2.3.4' } }], device_fingerprint: { phone_number: 'p' } };
    expect(apply(input)).toEqual(input);
  });

  it('gives the same tokens in two runs with one key and different ones under another key', () => {
    const first = JSON.stringify(
      createPolicyApplier(PII_PRESETS.pseudonymize, createTokenizer(KEY))(session()),
    );
    const second = JSON.stringify(
      createPolicyApplier(PII_PRESETS.pseudonymize, createTokenizer(Buffer.from(KEY)))(session()),
    );
    const otherKey = JSON.stringify(
      createPolicyApplier(
        PII_PRESETS.pseudonymize,
        createTokenizer(Buffer.from('another-key-of-thirty-two-bytes!')),
      )(session()),
    );
    expect(second).toBe(first);
    expect(otherKey).not.toBe(first);
    expect(otherKey.match(/hmac:/g)?.length).toBe(6);
  });
});
