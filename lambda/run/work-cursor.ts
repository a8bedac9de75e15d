import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { InvalidPhaseInputError } from '../core/errors';
import type { RunPlan } from './run-plan';

/** Where a segment's walk goes on: a Scan key (undefined: from the start) or a listed audit's offset. */
export type WalkCursor =
  | { readonly kind: 'scan'; readonly key: Record<string, AttributeValue> | undefined }
  | { readonly kind: 'list'; readonly offset: number };

/**
 * Where the next Work of a segment starts. `handover`: first the `users` users the previous
 * Work took and did not finish, listed in its step record (run-store.ts; a state payload could
 * not hold a page of ids), then the walk from `after` (null: nothing after them).
 */
export type WorkCursor =
  | WalkCursor
  | { readonly kind: 'handover'; readonly users: number; readonly after: WalkCursor | null };

/** A Work cursor as the string a state payload carries (null: from the start). */
export function encodeCursor(cursor: WorkCursor | undefined): string | null {
  return cursor === undefined ? null : JSON.stringify(cursor);
}

export function decodeCursor(text: string | null, plan: RunPlan): WorkCursor {
  if (text === null)
    return plan.users.kind === 'list' ? { kind: 'list', offset: 0 } : { kind: 'scan', key: undefined };
  let cursor: unknown;
  try {
    cursor = JSON.parse(text);
  } catch {
    // reported below
  }
  if (isWalkCursor(cursor)) return cursor;
  if (isHandOver(cursor)) return cursor;
  throw new InvalidPhaseInputError(`slice.cursor is not a cursor this job wrote: ${text.slice(0, 200)}`);
}

function isWalkCursor(value: unknown): value is WalkCursor {
  const cursor = value as Partial<Record<'kind' | 'offset' | 'key', unknown>> | null;
  if (typeof cursor !== 'object' || cursor === null) return false;
  if (cursor.kind === 'list') return Number.isInteger(cursor.offset) && (cursor.offset as number) >= 0;
  return cursor.kind === 'scan' && typeof cursor.key === 'object' && cursor.key !== null;
}

function isHandOver(value: unknown): value is Extract<WorkCursor, { kind: 'handover' }> {
  const cursor = value as Partial<Record<'kind' | 'users' | 'after', unknown>> | null;
  return (
    typeof cursor === 'object' &&
    cursor !== null &&
    cursor.kind === 'handover' &&
    Number.isInteger(cursor.users) &&
    (cursor.users as number) > 0 &&
    (cursor.after === null || isWalkCursor(cursor.after))
  );
}
