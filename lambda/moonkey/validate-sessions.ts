import { MalformedResponseError } from '../core/errors';
import { listSessionsResponseSchema, sessionListItemSchema } from './session-record';

export interface RejectedItem {
  readonly user_id: string;
  readonly reason: 'schema' | 'duplicate_session_id' | 'user_id_mismatch';
  readonly issues: readonly { path: string; message: string }[];
  /** The item exactly as MoonKey sent it, so nothing is lost and it can be replayed later. */
  readonly item: unknown;
}

export interface ValidatedSessions {
  /** Valid items as returned (unknown fields kept); zod's output is not used so nothing is reshaped. */
  readonly valid: Record<string, unknown>[];
  readonly rejected: RejectedItem[];
}

/**
 * Splits one response into exportable sessions and quarantined items. A body that is not a
 * `{ sessions: [...] }` envelope is a failed call (MalformedResponseError); an invalid item only
 * costs itself. Besides the schema, two checks an auditor relies on: a session listed under the
 * wrong user, and the same session id twice in one response (the document says `uniqueItems`).
 */
export function validateSessions(userId: string, body: unknown): ValidatedSessions {
  const envelope = listSessionsResponseSchema.safeParse(body);
  if (!envelope.success) {
    throw new MalformedResponseError(
      `response is not a { sessions: [...] } object: ${envelope.error.issues.map((i) => `${i.path.join('.') || 'body'} ${i.message}`).join('; ')}`,
    );
  }
  const valid: Record<string, unknown>[] = [];
  const rejected: RejectedItem[] = [];
  const seen = new Set<string>();
  for (const item of envelope.data.sessions) {
    const parsed = sessionListItemSchema.safeParse(item);
    if (!parsed.success) {
      rejected.push({
        user_id: userId,
        reason: 'schema',
        issues: parsed.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
        item,
      });
    } else if (parsed.data.user_id !== userId) {
      rejected.push({
        user_id: userId,
        reason: 'user_id_mismatch',
        issues: [
          { path: 'user_id', message: `session belongs to ${parsed.data.user_id}, listed under ${userId}` },
        ],
        item,
      });
    } else if (seen.has(parsed.data.id)) {
      rejected.push({
        user_id: userId,
        reason: 'duplicate_session_id',
        issues: [{ path: 'id', message: `session ${parsed.data.id} appears more than once in the response` }],
        item,
      });
    } else {
      seen.add(parsed.data.id);
      valid.push(item as Record<string, unknown>);
    }
  }
  return { valid, rejected };
}
