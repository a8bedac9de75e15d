import { setMaxListeners } from 'node:events';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import pLimit from 'p-limit';
import { DeadlineExceededError, RunAbandonedError } from '../core/errors';
import { AdaptiveConcurrency } from '../flow/adaptive-concurrency';
import { createRateLimiter, unlimited } from '../flow/rate-limiter';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import { emptyCounts, type FailedUser, type RunCounts } from '../snapshot/manifest';
import { NdjsonWriter } from '../snapshot/ndjson-writer';
import { abortUploads } from '../snapshot/s3-objects';
import { FILE_KINDS, type FileKind, type SnapshotKeys } from '../snapshot/snapshot-keys';
import { recordUpload } from '../snapshot/upload-registry';
import { Admission } from './admission';
import type { ExportContext } from './job-context';
import type { RunPlan } from './run-plan';
import { type ScanSlice, scanUsers } from './scan-users';
import { concurrencyShare, rateShare } from './segment-share';
import { UserExport } from './user-export';

export type WorkCursor =
  | { readonly kind: 'scan'; readonly key: Record<string, AttributeValue> | undefined }
  | { readonly kind: 'list'; readonly offset: number };

export interface WorkInput {
  readonly plan: RunPlan;
  readonly keys: SnapshotKeys;
  readonly segment: number;
  readonly totalSegments: number;
  readonly cursor: WorkCursor;
  /** Unique per Work attempt: part of its file keys, so a retried attempt never reuses one. */
  readonly writerId: string;
  /** Epoch ms after which no new page (or listed user) is started; unset: run to the end. */
  readonly stopAt?: number;
  /**
   * Epoch ms at which this Work gives up with DeadlineExceededError, in-flight calls and all,
   * rather than be killed mid-write: the page it was finishing took too long.
   */
  readonly hardStopAt?: number;
  /** Aborts this Work from outside (another segment of an in-process run failed). */
  readonly signal?: AbortSignal;
  /** Asked before each page: true once the run was given up (its failed manifest exists). */
  readonly isRunOver?: () => Promise<boolean>;
  readonly onProgress?: (progress: Progress) => void;
  /** Told what this Work had done when it failed, so the failed manifest can say it. */
  readonly onFailure?: (partial: Pick<WorkResult, 'counts' | 'failedUsers'>) => Promise<void>;
}

export interface WorkResult {
  /** Closed files, still open multipart uploads: invisible until Commit completes them. */
  readonly files: PendingFile[];
  readonly counts: RunCounts;
  readonly failedUsers: FailedUser[];
  /** Where the next Work of this segment continues; undefined when the segment is finished. */
  readonly next: WorkCursor | undefined;
}

export interface Progress {
  readonly usersScanned: number;
  readonly usersDone: number;
  readonly usersPerSecond: number;
  readonly inFlight: number;
  /** Calls allowed in flight now: this worker's share, or less while adaptive concurrency backs off. */
  readonly concurrency: number;
  readonly sessionsExported: number;
  readonly usersFailed: number;
  readonly retries: number;
  readonly elapsedMs: number;
}

/** Users of a listed audit handed to one Work between checks of the clock. */
const LIST_CHUNK = 500;

/**
 * One Work step of one segment: walks users from `cursor` until the segment ends or `stopAt`
 * passes, calling, validating and writing each, and returns the files it wrote as pending
 * uploads with its counts and the cursor to continue from. EXPORT_CONCURRENCY and EXPORT_MAX_RPS
 * are limits of the whole run: this worker takes its segment's share of each (segment-share.ts). At
 * `stopAt` it starts no new page but finishes the current one (the cursor is a page boundary,
 * the only resumable point of a DynamoDB Scan), so EXPORT_DEADLINE_MARGIN_MS must cover a page.
 * On a fatal error it aborts its own uploads and throws.
 */
export async function runWork(input: WorkInput, ctx: ExportContext): Promise<WorkResult> {
  return new Work(input, ctx).run();
}

class Work {
  private readonly abort = new AbortController();
  private readonly counts = emptyCounts();
  private readonly failedUsers: FailedUser[] = [];
  private readonly writers: Record<FileKind, NdjsonWriter>;
  private readonly users: UserExport;
  private readonly admission: Admission;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly aimd: AdaptiveConcurrency | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly input: WorkInput,
    private readonly ctx: ExportContext,
  ) {
    const { config } = ctx;
    // Every in-flight call and backoff sleep listens to this one signal.
    setMaxListeners(0, this.abort.signal);
    const onOuterAbort = () => this.failRun(input.signal?.reason as Error);
    if (input.signal?.aborted) onOuterAbort();
    else input.signal?.addEventListener('abort', onOuterAbort, { once: true });
    const concurrency = concurrencyShare(config.concurrency, input.segment, input.totalSegments);
    this.limit = pLimit(concurrency);
    const limiter =
      config.maxRps === undefined
        ? unlimited
        : createRateLimiter(rateShare(config.maxRps, input.totalSegments));
    this.aimd = config.adaptiveConcurrency ? new AdaptiveConcurrency({ max: concurrency }) : undefined;
    this.admission = new Admission(concurrency * 2 + 32, () => this.limit.concurrency);
    const { keys } = input;
    const writer = (kind: FileKind) =>
      new NdjsonWriter({
        s3: ctx.s3,
        bucket: config.bucket,
        keyForFile: (index) => keys.fileKey(kind, input.writerId, index),
        targetFileBytes: config.targetFileBytes,
        partBytes: config.uploadPartBytes,
        gzipLevel: config.gzipLevel,
        onUploadCreated: (upload) => recordUpload(ctx.s3, config.bucket, keys, upload),
      });
    this.writers = {
      sessions: writer('sessions'),
      rejects: writer('rejects'),
      'failed-users': writer('failed-users'),
    };
    this.users = new UserExport({
      config,
      run: input.plan,
      fetchSessions: ctx.fetchSessions,
      limit: this.limit,
      limiter,
      aimd: this.aimd,
      admission: this.admission,
      writers: this.writers,
      counts: this.counts,
      failedUsers: this.failedUsers,
      logger: ctx.logger,
      signal: this.abort.signal,
      failRun: (error) => this.failRun(error),
    });
  }

  async run(): Promise<WorkResult> {
    const stopTimer = this.startProgressTimer();
    try {
      const next = await this.walk();
      await this.admission.drained();
      this.throwIfAborted();
      const files = (await Promise.all(FILE_KINDS.map((kind) => this.writers[kind].close()))).flat();
      const aimd = this.aimd;
      this.ctx.logger.info('work step finished', {
        segment: this.input.segment,
        done: next === undefined,
        counts: this.counts,
        ...(aimd
          ? {
              adaptiveConcurrency: {
                decreases: aimd.decreases,
                lowest: aimd.lowest,
                final: aimd.limit,
                max: aimd.max,
              },
            }
          : {}),
      });
      return { files, counts: { ...this.counts }, failedUsers: [...this.failedUsers], next };
    } catch (error) {
      this.failRun(error as Error);
      await this.admission.drained();
      // Closed and open files alike: this Work's uploads will never be committed.
      const closed = (await Promise.all(FILE_KINDS.map((kind) => this.writers[kind].abort()))).flat();
      const notAborted = await abortUploads(this.ctx.s3, this.ctx.config.bucket, closed);
      if (notAborted.length > 0)
        this.ctx.logger.warn('some uploads of this Work could not be aborted; Abort and later runs retry', {
          count: notAborted.length,
        });
      await this.input
        .onFailure?.({ counts: { ...this.counts }, failedUsers: [...this.failedUsers] })
        .catch(() => undefined);
      throw (this.abort.signal.reason as Error | undefined) ?? error;
    } finally {
      stopTimer();
    }
  }

  private shouldStop(): boolean {
    return this.input.stopAt !== undefined && Date.now() >= this.input.stopAt;
  }

  private async walk(): Promise<WorkCursor | undefined> {
    const { cursor } = this.input;
    if (cursor.kind === 'list') return this.walkList(cursor.offset);
    return this.walkScan(cursor.key);
  }

  private async walkList(offset: number): Promise<WorkCursor | undefined> {
    const users = this.input.plan.users;
    if (users.kind !== 'list') throw new Error('a list cursor needs a listed audit');
    let at = offset;
    while (at < users.userIds.length) {
      if (this.abort.signal.aborted) return { kind: 'list', offset: at };
      if (at > offset && this.shouldStop()) return { kind: 'list', offset: at };
      await this.checkRunNotOver();
      const end = Math.min(users.userIds.length, at + LIST_CHUNK);
      for (; at < end; at++) {
        if (this.abort.signal.aborted) return { kind: 'list', offset: at };
        this.counts.users_scanned++;
        if (this.input.plan.dryRun) continue;
        if (!this.admission.hasRoom()) await this.admission.roomForOneMore();
        this.users.start(users.userIds[at] as string);
      }
    }
    return undefined;
  }

  private async walkScan(start: Record<string, AttributeValue> | undefined): Promise<WorkCursor | undefined> {
    const { config } = this.ctx;
    const slice: ScanSlice = {
      segment: this.input.segment,
      totalSegments: this.input.totalSegments,
      cursor: start,
    };
    const pages = scanUsers(this.ctx.dynamodb, slice, {
      tableName: config.usersTableName,
      idAttribute: config.userIdAttribute,
      pageSize: config.scanPageSize,
      signal: this.abort.signal,
    });
    let cursor = start;
    await this.checkRunNotOver();
    for await (const page of pages) {
      this.counts.users_scanned += page.userIds.length;
      this.counts.users_unusable += page.unusable;
      if (!this.input.plan.dryRun) {
        for (const userId of page.userIds) {
          if (this.abort.signal.aborted) return { kind: 'scan', key: cursor };
          if (!this.admission.hasRoom()) await this.admission.roomForOneMore();
          this.users.start(userId);
        }
      }
      cursor = page.nextCursor;
      if (cursor === undefined) return undefined;
      // Checked after a page, so every Work makes progress however little time it was given.
      if (this.shouldStop()) return { kind: 'scan', key: cursor };
      await this.checkRunNotOver();
    }
    return undefined;
  }

  private async checkRunNotOver(): Promise<void> {
    if (this.input.isRunOver && (await this.input.isRunOver())) {
      throw new RunAbandonedError(
        `run ${this.input.plan.runId} of ${this.input.plan.snapshotId} was already given up (its failed manifest exists); this Work stopped`,
      );
    }
  }

  /** First fatal error wins; every in-flight call and sleep sees the abort at once. */
  private failRun(error: Error): void {
    if (!this.abort.signal.aborted) this.abort.abort(error);
  }

  private throwIfAborted(): void {
    if (this.abort.signal.aborted) throw this.abort.signal.reason;
  }

  private progress(): Progress {
    const elapsedMs = Date.now() - this.startedAt;
    return {
      usersScanned: this.counts.users_scanned,
      usersDone: this.counts.users_processed,
      usersPerSecond: elapsedMs > 0 ? Math.round((this.counts.users_processed * 1000) / elapsedMs) : 0,
      inFlight: this.limit.activeCount,
      concurrency: this.limit.concurrency,
      sessionsExported: this.counts.sessions_exported,
      usersFailed: this.counts.users_failed,
      retries: this.counts.retries,
      elapsedMs,
    };
  }

  private startProgressTimer(): () => void {
    const timer = setInterval(() => {
      const p = this.progress();
      this.ctx.logger.info('progress', { segment: this.input.segment, ...p });
      this.input.onProgress?.(p);
    }, this.ctx.config.progressIntervalMs);
    timer.unref();
    const { hardStopAt } = this.input;
    const deadline =
      hardStopAt === undefined
        ? undefined
        : setTimeout(
            () =>
              this.failRun(
                new DeadlineExceededError(
                  `stopped before the invocation deadline (EXPORT_DEADLINE_MARGIN_MS=${this.ctx.config.deadlineMarginMs}) with ${this.counts.users_processed} users of this step done; nothing was committed. Raise EXPORT_DEADLINE_MARGIN_MS so a scan page fits in it, or lower EXPORT_SCAN_PAGE_SIZE`,
                ),
              ),
            Math.max(0, hardStopAt - Date.now()),
          );
    deadline?.unref();
    return () => {
      clearInterval(timer);
      if (deadline) clearTimeout(deadline);
    };
  }
}
