type Json = Record<string, unknown>;

/** What of a quarantined item a rejects line carries (validate-sessions.ts's RejectedItem). */
export interface RejectedItemText {
  readonly item_raw: string;
  readonly item_length: number;
  readonly item_truncated: boolean;
}

export interface PseudonymizedRejectItem {
  /** The item with the policy applied, as JSON text; null when it was withheld. */
  readonly item: string | null;
  /** Why `item` is null: `truncated` (only a cut of the text was kept), `unparsable`, `shape`. */
  readonly item_withheld: 'truncated' | 'unparsable' | 'shape' | null;
  readonly item_length: number;
}

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * True when every place a personal field may sit is where the schema puts it, so applying the
 * policy reaches them all. An item whose `factors` is an object, or whose `method` is a list,
 * could hold a phone number where the policy does not look.
 */
export function hasKnownShape(item: Json): boolean {
  const { factors, device_fingerprint } = item;
  if (device_fingerprint !== undefined && !isObject(device_fingerprint)) return false;
  if (factors === undefined) return true;
  if (!Array.isArray(factors)) return false;
  return factors.every(
    (factor) => isObject(factor) && (factor.method === undefined || isObject(factor.method)),
  );
}

/**
 * The quarantined item as the pseudonymized copy may hold it: the policy applied to the parsed
 * item, or nothing when the policy could not be sure to reach every personal field (a text cut
 * at its limit, not JSON, or of an unknown shape). The raw text never leaves this function.
 */
export function pseudonymizeReject(
  reject: RejectedItemText,
  apply: (record: Json) => Json,
): PseudonymizedRejectItem {
  const withheld = (why: PseudonymizedRejectItem['item_withheld']): PseudonymizedRejectItem => ({
    item: null,
    item_withheld: why,
    item_length: reject.item_length,
  });
  if (reject.item_truncated) return withheld('truncated');
  let parsed: unknown;
  try {
    parsed = JSON.parse(reject.item_raw);
  } catch {
    return withheld('unparsable');
  }
  if (!isObject(parsed) || !hasKnownShape(parsed)) return withheld('shape');
  try {
    return { item: JSON.stringify(apply(parsed)), item_withheld: null, item_length: reject.item_length };
  } catch {
    // A value nested too deep for JSON.stringify: nothing of it can be shown.
    return withheld('unparsable');
  }
}
