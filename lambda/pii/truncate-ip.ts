import { formatIp, parseIp, unmapIpv4 } from './ip-address';

export interface IpPrefixLengths {
  /** Bits of an IPv4 address kept; the default 24 keeps the network of 256 addresses. */
  readonly ipv4Bits: number;
  /** Bits of an IPv6 address kept; the default 48 keeps a site's allocation. */
  readonly ipv6Bits: number;
}

export const DEFAULT_IP_PREFIX: IpPrefixLengths = { ipv4Bits: 24, ipv6Bits: 48 };

/**
 * The network an address belongs to, in CIDR form (`192.0.2.0/24`, `2001:db8:1::/48`): enough
 * for geography and abuse patterns, not for one household. An IPv4-mapped IPv6 address is
 * truncated as the IPv4 address it is. `""` (no IP known) stays `""`; text that is not an
 * address gives undefined: it cannot be truncated, and keeping it could keep the address.
 */
export function truncateIp(value: string, prefix: IpPrefixLengths = DEFAULT_IP_PREFIX): string | undefined {
  const trimmed = value.trim();
  if (trimmed === '') return '';
  const parsed = parseIp(trimmed);
  if (parsed === undefined) return undefined;
  const ip = unmapIpv4(parsed);
  const bits = ip.version === 4 ? prefix.ipv4Bits : prefix.ipv6Bits;
  const bytes = ip.bytes.map((byte, i) => {
    const kept = Math.min(8, Math.max(0, bits - i * 8));
    return byte & ((0xff << (8 - kept)) & 0xff);
  });
  return `${formatIp({ version: ip.version, bytes })}/${bits}`;
}
