import { formatIp, parseIp, unmapIpv4 } from '../../../lambda/pii/ip-address';

describe('parseIp', () => {
  it('reads dotted IPv4 into its four bytes', () => {
    expect(parseIp('192.0.2.17')).toEqual({ version: 4, bytes: [192, 0, 2, 17] });
  });

  it('refuses IPv4 with a leading zero (octal to some parsers) and text that is not an address', () => {
    expect(parseIp('010.0.0.1')).toBeUndefined();
    expect(parseIp('not an ip')).toBeUndefined();
    expect(parseIp('')).toBeUndefined();
    expect(parseIp('1:2:3:4:5:6:7:8:9')).toBeUndefined();
  });

  it('expands :: and reads hex groups of either case', () => {
    expect(parseIp('2001:DB8::1')?.bytes).toEqual([
      0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    ]);
    expect(parseIp('::')?.bytes).toEqual(Array(16).fill(0));
    expect(parseIp('1::')?.bytes).toEqual([0, 1, ...Array(14).fill(0)]);
    expect(parseIp('1:2:3:4:5:6:7:8')?.bytes).toEqual([0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
  });

  it('reads an embedded IPv4 tail as the last two groups', () => {
    expect(parseIp('::ffff:192.0.2.1')).toEqual({
      version: 6,
      bytes: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1],
    });
  });

  it('ignores a zone id', () => {
    expect(parseIp('fe80::1%eth0')).toEqual(parseIp('fe80::1'));
  });
});

describe('unmapIpv4', () => {
  it('turns an IPv4-mapped IPv6 address into the IPv4 address', () => {
    expect(unmapIpv4(parseIp('::ffff:192.0.2.1') as never)).toEqual({ version: 4, bytes: [192, 0, 2, 1] });
  });

  it('leaves other IPv6 addresses, IPv4-compatible and NAT64 ones included, and IPv4 as they are', () => {
    for (const text of [
      '::192.0.2.1',
      '64:ff9b::192.0.2.1',
      '::fffe:192.0.2.1',
      '1::ffff:192.0.2.1',
      '10.0.0.1',
    ]) {
      const ip = parseIp(text);
      expect(unmapIpv4(ip as never)).toBe(ip);
    }
  });
});

describe('formatIp', () => {
  const canonical = (text: string) => formatIp(parseIp(text) as never);

  it('writes IPv4 as dotted decimal', () => {
    expect(canonical('203.0.113.9')).toBe('203.0.113.9');
  });

  it('writes IPv6 in lowercase without leading zeros', () => {
    expect(canonical('2001:0DB8:0000:0001:0000:0000:0000:00AB')).toBe('2001:db8:0:1::ab');
  });

  it('compresses the longest zero run, the first of equal runs, and never a single zero group', () => {
    expect(canonical('1:0:0:2:0:0:0:3')).toBe('1:0:0:2::3');
    expect(canonical('1:0:0:2:0:0:3:4')).toBe('1::2:0:0:3:4');
    expect(canonical('1:0:2:3:4:5:6:7')).toBe('1:0:2:3:4:5:6:7');
    expect(canonical('0:0:1:2:3:4:5:6')).toBe('::1:2:3:4:5:6');
    expect(canonical('1:2:3:4:5:6:0:0')).toBe('1:2:3:4:5:6::');
    expect(canonical('::')).toBe('::');
    expect(canonical('::1')).toBe('::1');
  });
});
