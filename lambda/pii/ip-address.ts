import { isIPv4, isIPv6 } from 'node:net';

/** An IP address as its bytes: 4 for IPv4, 16 for IPv6. */
export interface IpAddress {
  readonly version: 4 | 6;
  readonly bytes: readonly number[];
}

/**
 * Reads an IP address written any way `node:net` accepts (IPv6 with `::`, an embedded IPv4
 * tail, a zone id, any case), or undefined for anything else. Node refuses IPv4 octets with a
 * leading zero, which other parsers read as octal: such a text is not an address here either.
 */
export function parseIp(text: string): IpAddress | undefined {
  if (isIPv4(text)) return { version: 4, bytes: text.split('.').map(Number) };
  if (!isIPv6(text)) return undefined;
  // A zone names the sender's interface: it is not part of the address and says nothing to a reader.
  const address = text.split('%', 1)[0] as string;
  const [head = '', tail] = address.split('::') as [string, string | undefined];
  const groupsOf = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!group.includes('.')) return [Number.parseInt(group, 16)];
          const [a, b, c, d] = group.split('.').map(Number) as [number, number, number, number];
          return [(a << 8) | b, (c << 8) | d];
        });
  const left = groupsOf(head);
  const right = tail === undefined ? [] : groupsOf(tail);
  const groups = [...left, ...Array<number>(8 - left.length - right.length).fill(0), ...right];
  return { version: 6, bytes: groups.flatMap((group) => [group >> 8, group & 0xff]) };
}

const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/**
 * An IPv4 address written as IPv6 (`::ffff:192.0.2.1`, what a dual-stack socket reports) is the
 * IPv4 address: as such, one client gets one token whichever socket saw it.
 */
export function unmapIpv4(ip: IpAddress): IpAddress {
  if (ip.version === 6 && MAPPED_PREFIX.every((byte, i) => ip.bytes[i] === byte))
    return { version: 4, bytes: ip.bytes.slice(12) };
  return ip;
}

/**
 * The canonical text: dotted decimal for IPv4; for IPv6 the RFC 5952 form (lowercase, no leading
 * zeros, the longest run of two or more zero groups written `::`, the first one on a tie).
 */
export function formatIp(ip: IpAddress): string {
  if (ip.version === 4) return ip.bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((ip.bytes[i] as number) << 8) | (ip.bytes[i + 1] as number));
  let bestStart = -1;
  let bestLength = 1;
  for (let start = 0; start < 8; start++) {
    let length = 0;
    while (start + length < 8 && groups[start + length] === 0) length++;
    if (length > bestLength) {
      bestStart = start;
      bestLength = length;
    }
  }
  const hex = (part: number[]) => part.map((group) => group.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}
