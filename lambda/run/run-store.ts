import type { S3Client } from '@aws-sdk/client-s3';
import { InvalidPhaseInputError } from '../core/errors';
import type { JobLogger } from '../core/observability';
import type { CommitContext } from '../snapshot/commit';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import type { FailedUser, Manifest, RunCounts } from '../snapshot/manifest';
import { deleteKeys, getJson, listKeys, type OpenUpload, putJson } from '../snapshot/s3-objects';
import { SnapshotKeys } from '../snapshot/snapshot-keys';
import { recordUpload } from '../snapshot/upload-registry';
import type { RunPlan } from './run-plan';
import type { WorkCursor } from './work-cursor';

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
 * timed-out invocation wrote but the execution did not continue from is never part of the snapshot.
 * `pending` are users the step took (and counted as scanned) but did not finish: the next step
 * starts with them, reading them here, since its slice's `tail` is this step.
 */
export interface WorkStep {
  readonly prev: string | null;
  readonly segment: number;
  readonly step: number;
  readonly invocation: string;
  readonly files: readonly PendingFile[];
  readonly counts: RunCounts;
  readonly failedUsers: readonly FailedUser[];
  readonly pending: readonly string[];
  readonly next: WorkCursor | null;
}

/** What a Work that failed had done: its own record, since the execution keeps no result of it. */
export type FailedWork = Pick<WorkStep, 'counts' | 'failedUsers'>;

/** Plans a warm container has read, oldest first: a run's plan is read once, not once per Work step. */
const planCache = new Map<string, StoredPlan>();
const PLAN_CACHE_SIZE = 32;

function remember(cacheKey: string, stored: StoredPlan): void {
  planCache.delete(cacheKey);
  planCache.set(cacheKey, stored);
  // Only the oldest goes: a container working two runs keeps both.
  for (const oldest of planCache.keys()) {
    if (planCache.size <= PLAN_CACHE_SIZE) break;
    planCache.delete(oldest);
  }
}

/**
 * One run's state in S3, bound once to the client, the bucket and the run's key layout: its plan,
 * its Work steps, the records of its uploads and of failed Work, and its manifest. Phases ask it;
 * nothing else threads the bucket or builds keys.
 */
export class RunStore {
  readonly keys: SnapshotKeys;

  private constructor(
    readonly s3: S3Client,
    readonly bucket: string,
    readonly stored: StoredPlan,
    prefix: string,
  ) {
    const { plan } = stored;
    this.keys = new SnapshotKeys(prefix, plan.snapshotId, plan.snapshotAt, plan.runId);
  }

  /** Stores a new run's plan: the later phases find it by `planKey`. */
  static async create(s3: S3Client, bucket: string, prefix: string, stored: StoredPlan): Promise<RunStore> {
    const store = new RunStore(s3, bucket, stored, prefix);
    await putJson(s3, bucket, store.keys.planKey(), stored);
    remember(`${bucket}/${store.keys.planKey()}`, stored);
    return store;
  }

  /** The run whose plan is at `planKey` (from the state payload). */
  static async open(s3: S3Client, bucket: string, prefix: string, planKey: string): Promise<RunStore> {
    const cacheKey = `${bucket}/${planKey}`;
    let stored = planCache.get(cacheKey);
    if (stored === undefined) {
      stored = await getJson<StoredPlan>(s3, bucket, planKey);
      if (stored === undefined) {
        throw new InvalidPhaseInputError(
          `no run plan at s3://${bucket}/${planKey}: was the run planned by this stack?`,
        );
      }
    }
    remember(cacheKey, stored);
    return new RunStore(s3, bucket, stored, prefix);
  }

  get plan(): RunPlan {
    return this.stored.plan;
  }

  /** The settings a manifest records: the effective ones Plan stored, and the segments it chose. */
  get manifestSettings(): Record<string, unknown> {
    return { ...this.stored.settings, segments: this.stored.totalSegments };
  }

  /** What the commit protocol (snapshot/commit.ts) works on. */
  commitContext(logger: JobLogger): CommitContext {
    return { s3: this.s3, bucket: this.bucket, keys: this.keys, logger };
  }

  /** Written once the upload exists and before its first part, so a later run can always abort it. */
  recordUpload(upload: OpenUpload): Promise<void> {
    return recordUpload(this.s3, this.bucket, this.keys, upload);
  }

  /** Saves a Work step's result; its key is what the next step's `prev` and the slice's `tail` name. */
  async saveStep(step: WorkStep): Promise<string> {
    const key = this.keys.workStepKey(step.segment, step.step, step.invocation);
    await putJson(this.s3, this.bucket, key, step);
    return key;
  }

  async saveFailedWork(segment: number, step: number, invocation: string, failed: FailedWork): Promise<void> {
    await putJson(this.s3, this.bucket, this.keys.failedWorkKey(segment, step, invocation), failed);
  }

  /** Every step of every segment, found by walking each tail back to the segment's first step. */
  async collectSteps(tails: readonly (string | null)[]): Promise<WorkStep[]> {
    // Segments in parallel; each chain is walked back one step at a time (a step names its prev).
    const chains = await Promise.all(
      tails.map(async (tail) => {
        const chain: WorkStep[] = [];
        const seen = new Set<string>();
        for (let key = tail; key !== null; ) {
          if (seen.has(key)) throw new InvalidPhaseInputError(`run state loops at ${key}`);
          seen.add(key);
          const step = await this.readStep(key);
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
  async handedOver(
    tail: string | null,
    cursor: Extract<WorkCursor, { kind: 'handover' }>,
  ): Promise<readonly string[]> {
    if (tail === null)
      throw new InvalidPhaseInputError('slice.cursor hands users over, but slice.tail is null');
    const step = await this.readStep(tail);
    const pending = Array.isArray(step.pending) ? step.pending : [];
    if (pending.length !== cursor.users || !pending.every((id) => typeof id === 'string' && id !== '')) {
      throw new InvalidPhaseInputError(
        `slice.cursor hands over ${cursor.users} users, but the Work step s3://${this.bucket}/${tail} lists ${pending.length} pending`,
      );
    }
    return pending;
  }

  /** What failed Work steps recorded of themselves; partial by nature (a killed step records nothing). */
  async failedWork(): Promise<FailedWork[]> {
    const recordKeys = (await listKeys(this.s3, this.bucket, this.keys.workStatePrefix())).filter((k) =>
      k.endsWith('.failed.json'),
    );
    const records = await Promise.all(recordKeys.map((k) => getJson<FailedWork>(this.s3, this.bucket, k)));
    return records.filter((r) => r !== undefined);
  }

  /** The manifest of this run's slot as S3 holds it now, if any. */
  manifest(): Promise<Manifest | undefined> {
    return getJson<Manifest>(this.s3, this.bucket, this.keys.manifestKey());
  }

  /** True once the run was given up: its failed manifest is where readers look. */
  async isGivenUp(): Promise<boolean> {
    return (await this.manifest())?.status === 'failed';
  }

  /** Removes the plan, the steps and every other state object of this run. */
  async clear(): Promise<void> {
    await deleteKeys(this.s3, this.bucket, await listKeys(this.s3, this.bucket, this.keys.runStatePrefix()));
  }

  private async readStep(key: string): Promise<WorkStep> {
    const step = await getJson<WorkStep>(this.s3, this.bucket, key);
    if (step === undefined) throw new InvalidPhaseInputError(`missing Work step s3://${this.bucket}/${key}`);
    return step;
  }
}
