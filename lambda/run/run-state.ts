import type { S3Client } from '@aws-sdk/client-s3';
import { InvalidPhaseInputError } from '../core/errors';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import type { FailedUser, RunCounts } from '../snapshot/manifest';
import { getJson, putJson } from '../snapshot/s3-objects';
import type { RunPlan } from './run-plan';
import type { WalkCursor, WorkCursor } from './work';

/**
 * What phases hand each other through S3 rather than through state payloads, so a Step Functions
 * state stays a few hundred bytes whatever the table size: the plan (an audit may list 10,000 ids)
 * and each Work step's result (its pending files, counts and failed users).
 */
export interface StoredPlan {
  readonly plan: RunPlan;
  readonly totalSegments: number;
  readonly settings: Record<string, unknown>;
}

/**
 * One Work step's result. Steps of a segment form a chain through `prev`: Commit walks back from
 * each segment's last step (the `tail` the state machine carries), so a step that a retried or
 * timed-out attempt wrote but the execution did not continue from is never part of the snapshot.
 * `pending` are users the step took (and counted as scanned) but did not finish: the next step
 * starts with them, reading them here, since its slice's `tail` is this step.
 */
export interface WorkStep {
  readonly prev: string | null;
  readonly segment: number;
  readonly step: number;
  readonly attempt: string;
  readonly files: readonly PendingFile[];
  readonly counts: RunCounts;
  readonly failedUsers: readonly FailedUser[];
  readonly pending: readonly string[];
  readonly next: WorkCursor | null;
}

/** Plans per run id: a warm container reads a run's plan once, not once per Work step. */
const planCache = new Map<string, StoredPlan>();

export async function savePlan(s3: S3Client, bucket: string, key: string, stored: StoredPlan): Promise<void> {
  await putJson(s3, bucket, key, stored);
  planCache.set(key, stored);
}

export async function loadPlan(s3: S3Client, bucket: string, key: string): Promise<StoredPlan> {
  const cached = planCache.get(key);
  if (cached) return cached;
  const stored = await getJson<StoredPlan>(s3, bucket, key);
  if (stored === undefined) {
    throw new InvalidPhaseInputError(
      `no run plan at s3://${bucket}/${key}: was the run planned by this stack?`,
    );
  }
  if (planCache.size > 32) planCache.clear();
  planCache.set(key, stored);
  return stored;
}

export async function saveStep(s3: S3Client, bucket: string, key: string, step: WorkStep): Promise<void> {
  await putJson(s3, bucket, key, step);
}

/** Every step of every segment, found by walking each tail back to the segment's first step. */
export async function collectSteps(
  s3: S3Client,
  bucket: string,
  tails: readonly (string | null)[],
): Promise<WorkStep[]> {
  // Segments in parallel; each chain is walked back one step at a time (a step names its prev).
  const chains = await Promise.all(
    tails.map(async (tail) => {
      const chain: WorkStep[] = [];
      const seen = new Set<string>();
      for (let key = tail; key !== null; ) {
        if (seen.has(key)) throw new InvalidPhaseInputError(`run state loops at ${key}`);
        seen.add(key);
        const step = await getJson<WorkStep>(s3, bucket, key);
        if (step === undefined) throw new InvalidPhaseInputError(`missing Work step s3://${bucket}/${key}`);
        chain.push(step);
        key = step.prev;
      }
      return chain;
    }),
  );
  return chains.flat();
}

/**
 * The users a hand-over cursor stands for: the `pending` list of the step it came from (the
 * slice's tail), which must hold exactly as many as the cursor says.
 */
export async function loadHandedOver(
  s3: S3Client,
  bucket: string,
  tail: string | null,
  cursor: Extract<WorkCursor, { kind: 'handover' }>,
): Promise<readonly string[]> {
  if (tail === null)
    throw new InvalidPhaseInputError('slice.cursor hands users over, but slice.tail is null');
  const step = await getJson<WorkStep>(s3, bucket, tail);
  if (step === undefined) throw new InvalidPhaseInputError(`missing Work step s3://${bucket}/${tail}`);
  const pending = Array.isArray(step.pending) ? step.pending : [];
  if (pending.length !== cursor.users || !pending.every((id) => typeof id === 'string' && id !== '')) {
    throw new InvalidPhaseInputError(
      `slice.cursor hands over ${cursor.users} users, but the Work step s3://${bucket}/${tail} lists ${pending.length} pending`,
    );
  }
  return pending;
}

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
