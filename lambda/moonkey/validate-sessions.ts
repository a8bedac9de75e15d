import { MalformedResponseError } from '../core/errors';
import { boundedJson } from './bounded-json';
import { listSessionsResponseSchema, sessionListItemSchema } from './session-record';

/** Characters of a rejected item's text kept in rejects/; `item_length` says how long it was. */
export const REJECT_ITEM_CHARS = 64 * 1024;

export interface RejectedItem {
  readonly user_id: string;
  readonly reason: 'schema' | 'duplicate_session_id' | 'user_id_mismatch';
  readonly issues: readonly { path: string; message: string }[];
  /**
   * The item's JSON text as MoonKey sent it (when the response could be indexed; else the same
   * text re-serialized), cut to REJECT_ITEM_CHARS. Text, not the parsed value: writing a value
   * nested 100,000 deep with JSON.stringify overflowed the stack and failed the user instead of
   * quarantining the item; and an item of 40 MB should not be copied whole into rejects/.
   */
  readonly item_raw: string;
  /** Characters of the whole item text. */
  readonly item_length: number;
  readonly item_truncated: boolean;
}

function rawItem(
  item: unknown,
  raw: string | undefined,
): Pick<RejectedItem, 'item_raw' | 'item_length' | 'item_truncated'> {
  const { text, length } =
    raw === undefined
      ? boundedJson(item, REJECT_ITEM_CHARS)
      : { text: raw.slice(0, REJECT_ITEM_CHARS), length: raw.length };
  return { item_raw: text, item_length: length, item_truncated: length > text.length };
}

/**
 * One exportable session: the item as parsed (unknown fields kept; zod's output is not used, so
 * nothing is reshaped), and its JSON text exactly as MoonKey sent it, when the response could be
 * indexed (classify-response.ts). Whoever writes or rewrites the session uses `raw` when it is
 * there and JSON.stringify(item) otherwise; both say the same thing.
 */
export interface ValidSession {
  readonly item: Record<string, unknown>;
  readonly raw: string | undefined;
}

export interface ValidatedSessions {
  readonly valid: ValidSession[];
  readonly rejected: RejectedItem[];
}

/**
 * Splits one response into exportable sessions and quarantined items. A body that is not a
 * `{ sessions: [...] }` envelope is a failed call (MalformedResponseError); an invalid item only
 * costs itself. Besides the schema, two checks an auditor relies on: a session listed under the
 * wrong user, and the same session id twice in one response (the document says `uniqueItems`).
 * `rawItems` holds the text of each element of `body.sessions` by index, when known; it goes
 * with each item into the result.
 */
export function validateSessions(
  userId: string,
  body: unknown,
  rawItems?: readonly string[],
): ValidatedSessions {
  const envelope = listSessionsResponseSchema.safeParse(body);
  if (!envelope.success) {
    throw new MalformedResponseError(
      `response is not a { sessions: [...] } object: ${envelope.error.issues.map((i) => `${i.path.join('.') || 'body'} ${i.message}`).join('; ')}`,
    );
  }
  const valid: ValidSession[] = [];
  const rejected: RejectedItem[] = [];
  const seen = new Set<string>();
  const { sessions } = envelope.data;
  for (let index = 0; index < sessions.length; index++) {
    const item = sessions[index];
    const raw = rawItems?.[index];
    const parsed = sessionListItemSchema.safeParse(item);
    if (!parsed.success) {
      rejected.push({
        user_id: userId,
        reason: 'schema',
        issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        ...rawItem(item, raw),
      });
    } else if (parsed.data.user_id !== userId) {
      rejected.push({
        user_id: userId,
        reason: 'user_id_mismatch',
        issues: [
          { path: 'user_id', message: `session belongs to ${parsed.data.user_id}, listed under ${userId}` },
        ],
        ...rawItem(item, raw),
      });
    } else if (seen.has(parsed.data.id)) {
      rejected.push({
        user_id: userId,
        reason: 'duplicate_session_id',
        issues: [{ path: 'id', message: `session ${parsed.data.id} appears more than once in the response` }],
        ...rawItem(item, raw),
      });
    } else {
      seen.add(parsed.data.id);
      valid.push({ item: item as Record<string, unknown>, raw });
    }
  }
  return { valid, rejected };
}
