import { normalizeField } from './normalize-field';
import type { PiiField, PiiPolicy } from './pii-policy';
import { truncateIp } from './truncate-ip';

const METHOD_FIELDS = ['phone_number', 'email', 'wallet_public_address', 'provider_subject'] as const;
const DEVICE_FIELDS = ['ip', 'user_agent'] as const;

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Builds the function that turns a session into its pseudonymized copy under `policy`.
 * `tokenize` maps a normalized value to its token (hmac-token.ts).
 *
 * The input is never changed: the copy shares every untouched part with it, and only the
 * objects that hold a personal field are copied. It also takes items that failed validation
 * (a quarantined item is pseudonymized like a session): whatever the shape, every personal
 * field found where the schema puts it is handled, and a value that is not a string (which no
 * action could make safe to show) is removed unless the field is kept.
 *
 * `""` stays `""` under every action but drop: a token of the empty string would make every
 * session with an unknown IP look like one client.
 */
export function createPolicyApplier(
  policy: PiiPolicy,
  tokenize: (normalized: string) => string,
): (record: Json) => Json {
  const transform = (field: PiiField, value: unknown): { value: unknown } | undefined => {
    const action = policy[field];
    if (action.kind === 'keep') return { value };
    if (action.kind === 'drop' || typeof value !== 'string') return undefined;
    if (action.kind === 'truncate') {
      const network = truncateIp(value, action);
      return network === undefined ? undefined : { value: network };
    }
    const normalized = normalizeField(field, value);
    return { value: normalized === '' ? '' : tokenize(normalized) };
  };

  const applyFields = (object: Json, fields: readonly PiiField[]): Json => {
    if (!fields.some((field) => Object.hasOwn(object, field) && policy[field].kind !== 'keep')) return object;
    const copy: Json = { ...object };
    for (const field of fields) {
      if (!Object.hasOwn(object, field)) continue;
      const result = transform(field, object[field]);
      if (result === undefined) delete copy[field];
      else copy[field] = result.value;
    }
    return copy;
  };

  return (record) => {
    const copy: Json = { ...record };
    if (Array.isArray(record.factors)) {
      copy.factors = record.factors.map((factor: unknown) =>
        isObject(factor) && isObject(factor.method)
          ? { ...factor, method: applyFields(factor.method, METHOD_FIELDS) }
          : factor,
      );
    }
    if (isObject(record.device_fingerprint))
      copy.device_fingerprint = applyFields(record.device_fingerprint, DEVICE_FIELDS);
    return copy;
  };
}
