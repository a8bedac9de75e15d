import {
  DELIVERY_CHANNELS,
  type SessionFactor,
  type SessionListItem,
} from '../lambda/moonkey/session-record';

/**
 * The fake API's truth: a pure function from user id to that user's sessions, so tests can
 * compute exactly what a snapshot must contain without asking the server. Every factor type and
 * delivery channel of the OpenAPI document appears across the population; about 1 user in 5 has
 * no sessions; a few sessions carry `ip: ""` as the document's own example does.
 */

/** FNV-1a: a stable 32-bit hash of the user id seeds that user's generator. */
function hash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** mulberry32: tiny, fast, good enough to spread sessions and factors (and to seed fuzz tests). */
export function generator(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(rand: () => number, items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;
const token = (rand: () => number, length = 24) => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  let out = '';
  for (let i = 0; i < length; i++) out += alphabet[Math.floor(rand() * alphabet.length)];
  return out;
};

type FactorMaker = (rand: () => number, verifiedAt: number) => SessionFactor;

const oauth =
  (channel: string): FactorMaker =>
  (rand, verifiedAt) => ({
    delivery_channel: channel,
    type: 'oauth',
    method: {
      method_id: `oauth_${token(rand)}`,
      method_type: 'email',
      email_id: `email_${token(rand)}`,
      email: `${token(rand, 8).toLowerCase()}@example.com`,
      provider_subject: token(rand, 21),
      last_verified_at: verifiedAt,
    },
  });

export const FACTOR_MAKERS: readonly FactorMaker[] = [
  (rand, verifiedAt) => {
    const id = `pn_${token(rand)}`;
    return {
      delivery_channel: 'sms',
      type: 'otp',
      method: {
        method_id: id,
        method_type: 'phone_number',
        phone_number_id: id,
        phone_number: `+1415${String(Math.floor(rand() * 1e7)).padStart(7, '0')}`,
        last_verified_at: verifiedAt,
      },
    };
  },
  (rand, verifiedAt) => {
    const id = `email_${token(rand)}`;
    return {
      delivery_channel: 'email',
      type: 'otp',
      method: {
        method_id: id,
        method_type: 'email',
        email_id: id,
        email: `${token(rand, 8).toLowerCase()}@example.com`,
        last_verified_at: verifiedAt,
      },
    };
  },
  ...DELIVERY_CHANNELS.filter((channel) => channel.endsWith('_oauth')).map(oauth),
  ...(['eth_wallet', 'sol_wallet'] as const).map(
    (channel): FactorMaker =>
      (rand, verifiedAt) => {
        const id = `wallet_${token(rand)}`;
        return {
          delivery_channel: channel,
          type: 'wallet',
          method: {
            method_id: id,
            method_type: 'wallet',
            wallet_id: id,
            wallet_type: channel === 'eth_wallet' ? 'ETH' : 'SOL',
            wallet_public_address:
              channel === 'eth_wallet' ? `0x${token(rand, 40).toLowerCase()}` : token(rand, 44),
            last_verified_at: verifiedAt,
          },
        };
      },
  ),
  ...(['totp_authenticator', 'totp_recovery_code'] as const).map(
    (channel): FactorMaker =>
      (rand, verifiedAt) => {
        const id = `totp_${token(rand)}`;
        return {
          delivery_channel: channel,
          type: 'totp',
          method: { method_id: id, method_type: 'totp', totp_id: id, last_verified_at: verifiedAt },
        };
      },
  ),
  (rand, verifiedAt) => {
    const id = `webauthn_${token(rand)}`;
    return {
      delivery_channel: 'webauthn_credential',
      type: 'webauthn',
      method: {
        method_id: id,
        method_type: 'webauthn',
        webauthn_credential_id: id,
        last_verified_at: verifiedAt,
      },
    };
  },
];

const USER_AGENTS = [
  'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36',
  'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148',
  'MoonKeySDK/2.3 (Android 15; Pixel 9)',
  '',
];

/** A handful of shared egress IPs (offices, VPNs) so "sessions sharing one IP" has answers. */
const SHARED_IPS = ['203.0.113.10', '203.0.113.11', '198.51.100.7'];
const SESSION_COUNTS = [0, 0, 1, 1, 1, 1, 2, 2, 3, 4];

/** Sessions of `userId` as the fake API returns them, relative to `baseTime` (epoch seconds). */
export function sessionsFor(userId: string, baseTime: number): SessionListItem[] {
  const rand = generator(hash(userId));
  const count = pick(rand, SESSION_COUNTS);
  const sessions: SessionListItem[] = [];
  for (let i = 0; i < count; i++) {
    const startedAt = baseTime - Math.floor(rand() * 7 * 86_400);
    const lastActiveAt = startedAt + Math.floor(rand() * 3_600);
    const factorCount = rand() < 0.3 ? 2 : 1;
    const factors = Array.from({ length: factorCount }, () => pick(rand, FACTOR_MAKERS)(rand, startedAt));
    const ipRoll = rand();
    const ip =
      ipRoll < 0.05
        ? ''
        : ipRoll < 0.15
          ? pick(rand, SHARED_IPS)
          : `${10 + Math.floor(rand() * 200)}.${Math.floor(rand() * 256)}.${Math.floor(rand() * 256)}.${1 + Math.floor(rand() * 254)}`;
    sessions.push({
      id: `sess_${token(rand, 27)}`,
      user_id: userId,
      started_at: startedAt,
      expires_at: startedAt + 7 * 86_400 + Math.floor(rand() * 86_400),
      last_active_at: lastActiveAt,
      factors,
      device_fingerprint: { user_agent: pick(rand, USER_AGENTS), ip },
      updated_at: lastActiveAt,
      created_at: startedAt,
    });
  }
  return sessions;
}

/**
 * Whether the fake API treats `userId` as deleted when a `fraction` of users is: decided by a hash
 * of the id alone (salted, so it is independent of how many sessions the user would have had), so
 * tests know which users are gone without asking the server. 1 deletes everyone.
 */
export function isDeletedUser(userId: string, fraction: number): boolean {
  return fraction > 0 && hash(`deleted/${userId}`) / 2 ** 32 < fraction;
}

/** Deterministic, realistic user ids: `user_` + 27 base62 characters, like the document's example. */
export function userIdFor(index: number): string {
  return `user_${token(generator(index + 1), 27)}`;
}
