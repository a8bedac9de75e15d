import { describePolicy, PII_FIELDS, PII_PRESETS, parsePolicy } from '../../../lambda/pii/pii-policy';

const parsed = (text: string) => {
  const result = parsePolicy(text);
  if (!result.ok) throw new Error(result.error);
  return result.policy;
};
const errorOf = (text: string) => {
  const result = parsePolicy(text);
  if (result.ok) throw new Error(`${text} parsed`);
  return result.error;
};

describe('PII_PRESETS', () => {
  it('name every field in every preset', () => {
    for (const preset of Object.values(PII_PRESETS))
      expect(Object.keys(preset).sort()).toEqual([...PII_FIELDS].sort());
  });

  it('are what their names promise', () => {
    expect(describePolicy(PII_PRESETS.pseudonymize)).toBe(
      'phone_number=hash,email=hash,wallet_public_address=hash,provider_subject=hash,ip=hash,user_agent=hash',
    );
    expect(describePolicy(PII_PRESETS.analytics)).toBe(
      'phone_number=hash,email=hash,wallet_public_address=hash,provider_subject=hash,ip=truncate/24/48,user_agent=keep',
    );
    expect(describePolicy(PII_PRESETS.minimal)).toBe(
      'phone_number=hash,email=hash,wallet_public_address=hash,provider_subject=hash,ip=drop,user_agent=drop',
    );
  });
});

describe('parsePolicy', () => {
  it('reads a preset name', () => {
    expect(parsed('analytics')).toEqual(PII_PRESETS.analytics);
    expect(parsed(' minimal ')).toEqual(PII_PRESETS.minimal);
  });

  it('reads a preset amended by fields', () => {
    expect(parsed('analytics, user_agent=drop,ip=truncate/16/32')).toEqual({
      ...PII_PRESETS.analytics,
      user_agent: { kind: 'drop' },
      ip: { kind: 'truncate', ipv4Bits: 16, ipv6Bits: 32 },
    });
  });

  it('reads the per-field form naming every field, and reads back what describePolicy writes', () => {
    const text =
      'phone_number=keep,email=drop,wallet_public_address=hash,provider_subject=keep,ip=truncate,user_agent=hash';
    expect(parsed(text)).toEqual({
      phone_number: { kind: 'keep' },
      email: { kind: 'drop' },
      wallet_public_address: { kind: 'hash' },
      provider_subject: { kind: 'keep' },
      ip: { kind: 'truncate', ipv4Bits: 24, ipv6Bits: 48 },
      user_agent: { kind: 'hash' },
    });
    expect(describePolicy(parsed(text))).toBe(text.replace('ip=truncate', 'ip=truncate/24/48'));
    expect(parsed(describePolicy(PII_PRESETS.analytics))).toEqual(PII_PRESETS.analytics);
  });

  it('refuses a per-field form that leaves fields out, naming them', () => {
    expect(errorOf('phone_number=hash,email=hash')).toBe(
      'names no action for wallet_public_address, provider_subject, ip, user_agent: name every field, or start with a preset (pseudonymize, analytics, minimal)',
    );
  });

  it('refuses unknown presets, fields and actions, with what is allowed', () => {
    expect(errorOf('strict')).toBe(
      '"strict" is neither a preset (pseudonymize, analytics, minimal; only first) nor field=action',
    );
    expect(errorOf('email=hash,analytics')).toContain('"analytics" is neither a preset');
    expect(errorOf('analytics,')).toContain('"" is neither');
    expect(errorOf('analytics,x email=hash')).toContain('"x email=hash" is neither');
    expect(errorOf('analytics,email=hash ip=drop')).toContain('is neither');
    expect(errorOf('analytics,phone=hash')).toBe(
      '"phone" is not a field (phone_number, email, wallet_public_address, provider_subject, ip, user_agent)',
    );
    expect(errorOf('analytics,email=mask')).toBe(
      'email=mask: the action must be keep, hash, drop or truncate',
    );
    expect(errorOf('analytics,ip=truncate/24')).toBe(
      'ip=truncate/24: the action must be keep, hash, drop or truncate',
    );
    expect(errorOf('analytics,ip=truncate/24/48/1')).toContain('the action must be');
    expect(errorOf('analytics,ip=xtruncate')).toContain('the action must be');
    expect(errorOf('analytics,ip=truncate/1111/48')).toContain('the action must be');
  });

  it('refuses truncate on any field but ip', () => {
    expect(errorOf('analytics,email=truncate')).toBe('email=truncate: only ip can be truncated');
  });

  it('refuses prefix lengths out of range', () => {
    expect(errorOf('analytics,ip=truncate/0/48')).toBe(
      'ip=truncate/0/48: the IPv4 prefix length must be 1 to 32',
    );
    expect(errorOf('analytics,ip=truncate/33/48')).toBe(
      'ip=truncate/33/48: the IPv4 prefix length must be 1 to 32',
    );
    expect(errorOf('analytics,ip=truncate/24/0')).toBe(
      'ip=truncate/24/0: the IPv6 prefix length must be 1 to 128',
    );
    expect(errorOf('analytics,ip=truncate/24/129')).toBe(
      'ip=truncate/24/129: the IPv6 prefix length must be 1 to 128',
    );
    expect(parsed('analytics,ip=truncate/1/1').ip).toEqual({ kind: 'truncate', ipv4Bits: 1, ipv6Bits: 1 });
    expect(parsed('analytics,ip=truncate/32/128').ip).toEqual({
      kind: 'truncate',
      ipv4Bits: 32,
      ipv6Bits: 128,
    });
  });

  it('refuses a field named twice', () => {
    expect(errorOf('analytics,email=hash,email=keep')).toBe('email is named twice');
  });

  it('does not take inherited names for presets', () => {
    expect(errorOf('toString')).toContain('"toString" is neither');
  });
});
