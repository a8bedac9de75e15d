import { readFileSync } from 'node:fs';

/** 8 hex digits of /proc/net/tcp: one 32-bit word in host (little-endian) byte order. */
const wordBytes = (hex: string): number[] =>
  [6, 4, 2, 0].map((at) => Number.parseInt(hex.slice(at, at + 2), 16));

function address(hex: string): string {
  if (hex.length === 8) return wordBytes(hex).join('.');
  const bytes = [0, 8, 16, 24].flatMap((at) => wordBytes(hex.slice(at, at + 8)));
  const v4 = bytes.slice(12).join('.');
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff)
    return `::ffff:${v4}`;
  if (bytes.every((b) => b === 0)) return '::';
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return '::1';
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push((((bytes[i] ?? 0) << 8) | (bytes[i + 1] ?? 0)).toString(16));
  return groups.join(':');
}

/**
 * Every local address with a TCP socket LISTENing on `port`, from the kernel's own tables
 * (/proc/net/tcp and tcp6, what `ss -ltn` reads), whichever process owns it: `0.0.0.0` or `::`
 * means every interface. Linux only, like the CI this project runs on.
 */
export function listeningAddresses(port: number): string[] {
  const found: string[] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readFileSync(table, 'utf8').split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (!local || state !== '0A') continue; // 0A: TCP_LISTEN
      const [host = '', portHex = ''] = local.split(':');
      if (Number.parseInt(portHex, 16) === port) found.push(address(host));
    }
  }
  return found;
}

/** 127.0.0.0/8, ::1, or 127.x mapped into IPv6 (how Java binds an IPv4 loopback address). */
export const isLoopback = (address: string): boolean =>
  address.startsWith('127.') || address === '::1' || address.startsWith('::ffff:127.');
