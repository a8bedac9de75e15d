import { formatIp, parseIp, unmapIpv4 } from './ip-address';
import type { PiiField } from './pii-policy';

/** Spacing and punctuation people and forms put into phone numbers; none of it is a digit. */
const PHONE_PUNCTUATION = /[\s().\-\u2010-\u2015]/g;
const HEX_ADDRESS = /^0x[0-9a-f]+$/i;

/** `+1 (415) 222-2222` and `+14152222222` are one number; text that is not a number stays as written. */
export function normalizePhone(value: string): string {
  const stripped = value.replace(PHONE_PUNCTUATION, '');
  return /^\+?\d+$/.test(stripped) ? stripped : value.trim();
}

/** Mail systems treat addresses case-insensitively in practice, and forms add stray spaces. */
export function normalizeEmail(value: string): string {
  return value.trim().toLowerCase();
}

/**
 * Hex addresses (Ethereum's `0x…`) in lowercase: an EIP-55 checksummed address differs from the
 * same address in lowercase only by case. Other addresses (Solana's base58) are case-sensitive
 * and stay as written.
 */
export function normalizeWalletAddress(value: string): string {
  const trimmed = value.trim();
  return HEX_ADDRESS.test(trimmed) ? trimmed.toLowerCase() : trimmed;
}

/** The canonical text of an address (ip-address.ts); text that is not an address stays as written. */
export function normalizeIp(value: string): string {
  const trimmed = value.trim();
  const ip = parseIp(trimmed);
  return ip === undefined ? trimmed : formatIp(unmapIpv4(ip));
}

const NORMALIZERS: Readonly<Record<PiiField, (value: string) => string>> = {
  phone_number: normalizePhone,
  email: normalizeEmail,
  wallet_public_address: normalizeWalletAddress,
  // An OAuth subject is opaque and case-sensitive, and a user agent is a whole text: as sent.
  provider_subject: (value) => value,
  ip: normalizeIp,
  user_agent: (value) => value,
};

/** The value in the one form that makes equal values equal text, so they get one token. */
export function normalizeField(field: PiiField, value: string): string {
  return NORMALIZERS[field](value);
}
