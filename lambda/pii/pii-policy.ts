import { DEFAULT_IP_PREFIX, type IpPrefixLengths } from './truncate-ip';

/**
 * The personal fields of a session: four in each factor's `method`, two in `device_fingerprint`.
 * Each is named by its own key; no two of them share one.
 */
export const PII_FIELDS = [
  'phone_number',
  'email',
  'wallet_public_address',
  'provider_subject',
  'ip',
  'user_agent',
] as const;

export type PiiField = (typeof PII_FIELDS)[number];

export type FieldAction =
  | { readonly kind: 'keep' }
  | { readonly kind: 'hash' }
  | { readonly kind: 'drop' }
  | ({ readonly kind: 'truncate' } & IpPrefixLengths);

export type PiiPolicy = Readonly<Record<PiiField, FieldAction>>;

const KEEP: FieldAction = { kind: 'keep' };
const HASH: FieldAction = { kind: 'hash' };
const DROP: FieldAction = { kind: 'drop' };
const TRUNCATE: FieldAction = { kind: 'truncate', ...DEFAULT_IP_PREFIX };

/**
 * Named policies:
 * - `pseudonymize`: every field a token; joins and counts by value still work.
 * - `analytics`: identifiers tokens, the IP cut to its network, the user agent kept (device and
 *   browser statistics need it, and alone it names nobody).
 * - `minimal`: identifiers tokens, IP and user agent removed.
 */
export const PII_PRESETS = {
  pseudonymize: {
    phone_number: HASH,
    email: HASH,
    wallet_public_address: HASH,
    provider_subject: HASH,
    ip: HASH,
    user_agent: HASH,
  },
  analytics: {
    phone_number: HASH,
    email: HASH,
    wallet_public_address: HASH,
    provider_subject: HASH,
    ip: TRUNCATE,
    user_agent: KEEP,
  },
  minimal: {
    phone_number: HASH,
    email: HASH,
    wallet_public_address: HASH,
    provider_subject: HASH,
    ip: DROP,
    user_agent: DROP,
  },
} as const satisfies Record<string, PiiPolicy>;

export type PiiPresetName = keyof typeof PII_PRESETS;

const isPreset = (name: string): name is PiiPresetName => Object.hasOwn(PII_PRESETS, name);
const isField = (name: string): name is PiiField => (PII_FIELDS as readonly string[]).includes(name);

export type PolicyParse =
  | { readonly ok: true; readonly policy: PiiPolicy }
  | { readonly ok: false; readonly error: string };

/**
 * Reads a policy setting: a preset name (`analytics`), or `field=action` pairs separated by
 * commas, after an optional preset they amend (`analytics,user_agent=drop`). Without a preset
 * every field must be named, so no field gets an action by accident. Actions: keep, hash, drop,
 * and for `ip` truncate (`truncate` is /24 and /48, `truncate/16/32` sets both lengths).
 */
export function parsePolicy(text: string): PolicyParse {
  const parts = text.split(',').map((part) => part.trim());
  const [first = ''] = parts;
  const base: Partial<Record<PiiField, FieldAction>> = isPreset(first) ? { ...PII_PRESETS[first] } : {};
  const named = new Set<PiiField>();
  for (const part of isPreset(first) ? parts.slice(1) : parts) {
    const match = /^([a-z_]+)=([a-z0-9/]+)$/.exec(part);
    if (!match) {
      return {
        ok: false,
        error: `"${part}" is neither a preset (${Object.keys(PII_PRESETS).join(', ')}; only first) nor field=action`,
      };
    }
    const [, field = '', actionText = ''] = match;
    if (!isField(field)) return { ok: false, error: `"${field}" is not a field (${PII_FIELDS.join(', ')})` };
    if (named.has(field)) return { ok: false, error: `${field} is named twice` };
    const action = parseAction(field, actionText);
    if (typeof action === 'string') return { ok: false, error: action };
    named.add(field);
    base[field] = action;
  }
  const missing = PII_FIELDS.filter((field) => base[field] === undefined);
  if (missing.length > 0)
    return {
      ok: false,
      error: `names no action for ${missing.join(', ')}: name every field, or start with a preset (${Object.keys(PII_PRESETS).join(', ')})`,
    };
  return { ok: true, policy: base as PiiPolicy };
}

function parseAction(field: PiiField, text: string): FieldAction | string {
  if (text === 'keep') return KEEP;
  if (text === 'hash') return HASH;
  if (text === 'drop') return DROP;
  const truncate = /^truncate(?:\/(\d{1,3})\/(\d{1,3}))?$/.exec(text);
  if (!truncate) return `${field}=${text}: the action must be keep, hash, drop or truncate`;
  if (field !== 'ip') return `${field}=truncate: only ip can be truncated`;
  if (truncate[1] === undefined) return TRUNCATE;
  const ipv4Bits = Number(truncate[1]);
  const ipv6Bits = Number(truncate[2]);
  if (ipv4Bits < 1 || ipv4Bits > 32) return `ip=${text}: the IPv4 prefix length must be 1 to 32`;
  if (ipv6Bits < 1 || ipv6Bits > 128) return `ip=${text}: the IPv6 prefix length must be 1 to 128`;
  return { kind: 'truncate', ipv4Bits, ipv6Bits };
}

/** The policy in the per-field form `parsePolicy` reads back: what a manifest records. */
export function describePolicy(policy: PiiPolicy): string {
  return PII_FIELDS.map((field) => {
    const action = policy[field];
    return action.kind === 'truncate'
      ? `${field}=truncate/${action.ipv4Bits}/${action.ipv6Bits}`
      : `${field}=${action.kind}`;
  }).join(',');
}
