import {
  normalizeEmail,
  normalizeField,
  normalizeIp,
  normalizePhone,
  normalizeWalletAddress,
} from '../../../lambda/pii/normalize-field';

describe('normalizePhone', () => {
  it('strips spacing and punctuation so one number is one text', () => {
    const written = [
      '+1 415 222 2222',
      '+1 (415) 222-2222',
      '+1.415.222.2222',
      ' +14152222222 ',
      '+1\t415\u00a0222\u20112222',
      '+1\u2013415\u2014222\u20152222',
      '+1\u2010415 222 2222',
    ];
    for (const text of written) expect(normalizePhone(text)).toBe('+14152222222');
  });

  it('keeps a number without a plus as digits', () => {
    expect(normalizePhone('(415) 222-2222')).toBe('4152222222');
  });

  it('leaves text that is not a number as written, trimmed', () => {
    expect(normalizePhone(' +1 415 CALL NOW ')).toBe('+1 415 CALL NOW');
    expect(normalizePhone('++14152222222')).toBe('++14152222222');
    expect(normalizePhone('1+4152222222')).toBe('1+4152222222');
    expect(normalizePhone('x+4152222222')).toBe('x+4152222222');
    expect(normalizePhone('+4152222222x')).toBe('+4152222222x');
  });

  it('keeps the empty string empty', () => {
    expect(normalizePhone('')).toBe('');
    expect(normalizePhone('  ')).toBe('');
  });
});

describe('normalizeEmail', () => {
  it('trims and lowercases, so case and stray spaces do not split one address', () => {
    expect(normalizeEmail('  Alice.Smith@Example.COM ')).toBe('alice.smith@example.com');
  });
});

describe('normalizeWalletAddress', () => {
  it('lowercases an EIP-55 checksummed Ethereum address', () => {
    expect(normalizeWalletAddress(' 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed ')).toBe(
      '0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed',
    );
    expect(normalizeWalletAddress('0X5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED')).toBe(
      '0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed',
    );
  });

  it('keeps a case-sensitive (base58) address as written, trimmed', () => {
    expect(normalizeWalletAddress(' 7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV ')).toBe(
      '7EcDhSYGxXyscszYEp35KHN8vvw3svAuLKTzXwCFLtV',
    );
    expect(normalizeWalletAddress('0xZZ')).toBe('0xZZ');
    expect(normalizeWalletAddress('A0xAB')).toBe('A0xAB');
    expect(normalizeWalletAddress('0xABg')).toBe('0xABg');
  });
});

describe('normalizeIp', () => {
  it('writes an IPv4-mapped IPv6 address as the IPv4 address', () => {
    expect(normalizeIp('::ffff:203.0.113.9')).toBe('203.0.113.9');
    expect(normalizeIp('::FFFF:CB00:7109')).toBe('203.0.113.9');
  });

  it('writes IPv6 compressed and lowercase', () => {
    expect(normalizeIp(' 2001:0DB8:0:0:0:0:0:0001 ')).toBe('2001:db8::1');
  });

  it('keeps text that is not an address as written, trimmed, and "" as ""', () => {
    expect(normalizeIp(' unknown ')).toBe('unknown');
    expect(normalizeIp('')).toBe('');
  });
});

describe('normalizeField', () => {
  it('applies each field its own rule', () => {
    expect(normalizeField('phone_number', '+1 415 222 2222')).toBe('+14152222222');
    expect(normalizeField('email', 'A@B.C')).toBe('a@b.c');
    expect(normalizeField('wallet_public_address', '0xAB')).toBe('0xab');
    expect(normalizeField('ip', '::ffff:10.0.0.1')).toBe('10.0.0.1');
  });

  it('keeps OAuth subjects and user agents exactly as sent (both are case-sensitive text)', () => {
    expect(normalizeField('provider_subject', ' AbC ')).toBe(' AbC ');
    expect(normalizeField('user_agent', ' Mozilla/5.0 ')).toBe(' Mozilla/5.0 ');
  });
});
