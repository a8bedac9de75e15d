import { DEFAULT_IP_PREFIX, truncateIp } from '../../../lambda/pii/truncate-ip';

describe('truncateIp', () => {
  it('keeps the /24 of IPv4 and the /48 of IPv6 by default', () => {
    expect(DEFAULT_IP_PREFIX).toEqual({ ipv4Bits: 24, ipv6Bits: 48 });
    expect(truncateIp('203.0.113.77')).toBe('203.0.113.0/24');
    expect(truncateIp('2001:db8:abcd:12:1:2:3:4')).toBe('2001:db8:abcd::/48');
  });

  it('truncates an IPv4-mapped IPv6 address as IPv4', () => {
    expect(truncateIp('::ffff:203.0.113.77')).toBe('203.0.113.0/24');
  });

  it('takes other prefix lengths, including ones inside a byte', () => {
    const prefix = { ipv4Bits: 20, ipv6Bits: 36 };
    expect(truncateIp('203.0.255.77', prefix)).toBe('203.0.240.0/20');
    expect(truncateIp('2001:db8:ffff::1', prefix)).toBe('2001:db8:f000::/36');
    expect(truncateIp('203.0.113.77', { ipv4Bits: 32, ipv6Bits: 128 })).toBe('203.0.113.77/32');
    expect(truncateIp('2001:db8::1', { ipv4Bits: 32, ipv6Bits: 128 })).toBe('2001:db8::1/128');
    expect(truncateIp('255.255.255.255', { ipv4Bits: 1, ipv6Bits: 1 })).toBe('128.0.0.0/1');
  });

  it('keeps "" as "" (no IP known) and trims spaces', () => {
    expect(truncateIp('')).toBe('');
    expect(truncateIp('  ')).toBe('');
    expect(truncateIp(' 10.1.2.3 ')).toBe('10.1.2.0/24');
  });

  it('gives undefined for text that is not an address', () => {
    expect(truncateIp('unknown')).toBeUndefined();
    expect(truncateIp('10.1.2')).toBeUndefined();
  });
});
