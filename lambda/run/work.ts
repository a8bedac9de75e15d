import { setMaxListeners } from 'node:events';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import pLimit from 'p-limit';
import { DeadlineExceededError, RunAbandonedError, ScanUsersError, WorkStalledError } from '../core/errors';
import { writerId } from '../core/facts';
import { AdaptiveConcurrency } from '../flow/adaptive-concurrency';
import { createRateLimiter, unlimited } from '../flow/rate-limiter';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import { emptyCounts, type FailedUser, type RunCounts } from '../snapshot/manifest';
import { NdjsonWriter } from '../snapshot/ndjson-writer';
import { abortUploads } from '../snapshot/s3-objects';
import { FILE_KINDS, type FileKind } from '../snapshot/snapshot-keys';
import { Admission } from './admission';
import type { JobContext } from './job-context';
import type { RunStore } from './run-store';
import { type ScanPosition, scanUsers } from './scan-users';
import { concurrencyShare, rateShare } from './segment-share';
import { UserExport } from './user-export';
import type { WalkCursor, WorkCursor } from './work-cursor';

export interface WorkInput {
  /** The run: its plan, its key layout, where its uploads and failed steps are recorded. */
  readonly store: RunStore;
  readonly segment: number;
  readonly totalSegments: number;
  /** This Work's place in its segment's chain (0 first). */
  readonly step: number;
  /** Unique per Work invocation: part of its file keys, so a retried invocation never reuses one. */
  readonly invocation: string;
  /** Where the walk starts; null: nothing is left of the segment but `handedOver`. */
  readonly cursor: WalkCursor | null;
  /**
   * Users the previous Work of this segment took and did not finish: done first, and not
   * counted as scanned again (the Work that read them counted them).
   */
  readonly handedOver: readonly string[];
  /** Epoch ms after which no new page (or listed user) is started. */
  readonly stopAt: number;
  /**
   * Epoch ms at which this Work stops its in-flight calls, rather than be killed mid-write: it
   * closes its files with what finished users wrote and hands the rest to the next Work.
   */
  readonly hardStopAt: number;
}

export interface WorkResult {
  /** Closed files, still open multipart uploads: invisible until Commit completes them. */
  readonly files: PendingFile[];
  readonly counts: RunCounts;
  readonly failedUsers: FailedUser[];
  /** Users taken and not finished (the hard stop came first), for the next Work of the segment. */
  readonly pending: string[];
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
  /** Users MoonKey answered 404 user_not_found for; part of `usersDone`. */
  readonly usersNotFound: number;
  readonly retries: number;
  readonly elapsedMs: number;
}

/** Users of a listed audit handed to one Work between checks of the clock. */
const LIST_CHUNK = 500;

/**
 * One Work step of one segment: the users handed over to it first, then walks users from
 * `cursor` until the segment ends or `stopAt` passes, calling, validating and writing each, and
 * returns the files it wrote as pending uploads with its counts and where to continue.
 * EXPORT_CONCURRENCY and EXPORT_MAX_RPS are limits of the whole run: this worker takes its
 * segment's share of each (segment-share.ts). At `stopAt` it starts no new page but finishes the
 * current one (a page boundary is the only resumable point of a DynamoDB Scan). At `hardStopAt` it aborts the
 * calls still running: their users wrote nothing yet, so they and the page's users not yet
 * started go to the next Work (a hand-over), and every user is still exported exactly once. A
 * Work that was handed users and finished none of them fails instead (WorkStalledError): one
 * call outlasts an invocation, and handing over again would loop.
 * On a fatal error it aborts its own uploads and throws.
 */
export async function runWork(input: WorkInput, ctx: JobContext): Promise<WorkResult> {
  return new Work(input, ctx).run();
}

class Work {
  private readonly abort = new AbortController();
  /** The first fatal error. The abort alone may be the hard stop, which fails nothing. */
  private fatal: Error | undefined;
  private hardStopped = false;
  private readonly counts = emptyCounts();
  private readonly failedUsers: FailedUser[] = [];
  /** Users taken (handed over, or of a page read) and not yet done: how often each was taken. */
  private readonly unfinished = new Map<string, number>();
  private readonly handedOver: ReadonlySet<string>;
  private handedOverDone = 0;
  /** Whether anything was taken (the hand-over, a page): a Work that took nothing made no progress. */
  private tookAny = false;
  /** Where the walk goes on after the users taken so far; null: the segment has no more. */
  private resumeAt: WalkCursor | null;
  private readonly writers: Record<FileKind, NdjsonWriter>;
  private readonly users: UserExport;
  private readonly admission: Admission;
  private readonly apiCalls: ReturnType<typeof pLimit>;
  private readonly aimd: AdaptiveConcurrency | undefined;
  private readonly startedAt = Date.now();

  constructor(
    private readonly input: WorkInput,
    private readonly ctx: JobContext,
  ) {
    const { config } = ctx;
    this.resumeAt = input.cursor;
    this.handedOver = new Set(input.handedOver);
    // Every in-flight call and backoff sleep listens to this one signal.
    setMaxListeners(0, this.abort.signal);
    const concurrency = concurrencyShare(config.concurrency, input.segment, input.totalSegments);
    this.apiCalls = pLimit(concurrency);
    const rateLimiter =
      config.maxRps === undefined
        ? unlimited
        : createRateLimiter(rateShare(config.maxRps, input.totalSegments));
    this.aimd = config.adaptiveConcurrency ? new AdaptiveConcurrency({ max: concurrency }) : undefined;
    this.admission = new Admission(concurrency * 2 + 32, () => this.apiCalls.concurrency);
    const { store } = input;
    const writerName = writerId(input.segment, input.step, input.invocation);
    const writer = (kind: FileKind) =>
      new NdjsonWriter({
        s3: store.s3,
        bucket: store.bucket,
        keyForFile: (index) => store.keys.fileKey(kind, writerName, index),
        targetFileBytes: config.targetFileBytes,
        partBytes: config.uploadPartBytes,
        gzipLevel: config.gzipLevel,
        onUploadCreated: (upload) => store.recordUpload(upload),
      });
    // A writer opens no file before its first line: the copies a run does not write cost nothing.
    this.writers = {
      sessions: writer('sessions'),
      rejects: writer('rejects'),
      'failed-users': writer('failed-users'),
      'pseudonymized/sessions': writer('pseudonymized/sessions'),
      'pseudonymized/rejects': writer('pseudonymized/rejects'),
    };
    this.users = new UserExport({
      config,
      run: input.store.plan,
      fetchSessions: ctx.fetchSessions,
      copies: ctx.pii,
      apiCalls: this.apiCalls,
      rateLimiter,
      aimd: this.aimd,
      admission: this.admission,
      writers: this.writers,
      counts: this.counts,
      failedUsers: this.failedUsers,
      logger: ctx.logger,
      signal: this.abort.signal,
      failRun: (error) => this.failRun(error),
      onUserDone: (userId) => this.userDone(userId),
    });
  }

  async run(): Promise<WorkResult> {
    const stopTimer = this.startProgressTimer();
    try {
      await this.walk();
      // After the hard stop this is quick: aborted calls end at once, started writes finish.
      await this.admission.drained();
      if (this.fatal) throw this.fatal;
      if (this.hardStopped) this.checkProgress();
      const files = (await Promise.all(FILE_KINDS.map((kind) => this.writers[kind].close()))).flat();
      const pending = [...this.unfinished].flatMap(([userId, times]) => Array<string>(times).fill(userId));
      const next: WorkCursor | undefined =
        pending.length > 0
          ? { kind: 'handover', users: pending.length, after: this.resumeAt }
          : (this.resumeAt ?? undefined);
      const aimd = this.aimd;
      this.ctx.logger.info('work step finished', {
        segment: this.input.segment,
        done: next === undefined,
        counts: this.counts,
        handedOver: pending.length,
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
      return { files, counts: { ...this.counts }, failedUsers: [...this.failedUsers], pending, next };
    } catch (error) {
      this.failRun(error as Error);
      await this.admission.drained();
      // Closed and open files alike: this Work's uploads will never be committed.
      const closed = (await Promise.all(FILE_KINDS.map((kind) => this.writers[kind].abort()))).flat();
      const { store } = this.input;
      const notAborted = await abortUploads(store.s3, store.bucket, closed);
      if (notAborted.length > 0)
        this.ctx.logger.warn('some uploads of this Work could not be aborted; Abort and later runs retry', {
          count: notAborted.length,
        });
      // So the failed manifest can say what this Work had done.
      await store
        .saveFailedWork(this.input.segment, this.input.step, this.input.invocation, {
          counts: { ...this.counts },
          failedUsers: [...this.failedUsers],
        })
        .catch(() => undefined);
      throw this.fatal ?? error;
    } finally {
      stopTimer();
    }
  }

  private shouldStop(): boolean {
    return Date.now() >= this.input.stopAt;
  }

  private async walk(): Promise<void> {
    await this.checkRunNotOver();
    const { handedOver } = this.input;
    if (handedOver.length > 0) {
      this.tookAny = true;
      if (!(await this.take(handedOver)) || this.shouldStop()) return;
    }
    const { cursor } = this.input;
    if (cursor === null) return;
    if (cursor.kind === 'list') return this.walkList(cursor.offset);
    return this.walkScan(cursor.key);
  }

  private async walkList(offset: number): Promise<void> {
    const users = this.input.store.plan.users;
    if (users.kind !== 'list') throw new Error('a list cursor needs a listed audit');
    for (let at = offset; at < users.userIds.length; ) {
      if (this.abort.signal.aborted) return;
      const end = Math.min(users.userIds.length, at + LIST_CHUNK);
      const chunk = users.userIds.slice(at, end);
      at = end;
      this.tookAny = true;
      this.counts.users_scanned += chunk.length;
      this.resumeAt = end < users.userIds.length ? { kind: 'list', offset: end } : null;
      if (!(await this.take(chunk))) return;
      if (this.resumeAt === null || this.shouldStop()) return;
      await this.checkRunNotOver();
    }
  }

  private async walkScan(start: Record<string, AttributeValue> | undefined): Promise<void> {
    const { config } = this.ctx;
    const position: ScanPosition = {
      segment: this.input.segment,
      totalSegments: this.input.totalSegments,
      cursor: start,
    };
    const pages = scanUsers(this.ctx.dynamodb, position, {
      tableName: config.usersTableName,
      idAttribute: config.userIdAttribute,
      pageSize: config.scanPageSize,
      signal: this.abort.signal,
    });
    try {
      for await (const page of pages) {
        this.tookAny = true;
        this.counts.users_scanned += page.userIds.length;
        this.counts.users_unusable += page.unusable;
        this.resumeAt = page.nextCursor === undefined ? null : { kind: 'scan', key: page.nextCursor };
        if (!(await this.take(page.userIds))) return;
        // Checked after a page, so every Work makes progress however little time it was given.
        if (this.resumeAt === null || this.shouldStop()) return;
        await this.checkRunNotOver();
      }
    } catch (error) {
      // The hard stop aborted the read of a page: not taken, so the next Work reads it again.
      if (this.hardStopped && this.fatal === undefined && error instanceof ScanUsersError) return;
      throw error;
    }
  }

  /**
   * Takes users into this Work (each unfinished until its outcome is written) and starts them as
   * admission allows. False when the abort came first: the rest stay unfinished, never started.
   */
  private async take(userIds: readonly string[]): Promise<boolean> {
    if (this.input.store.plan.dryRun) return true;
    for (const userId of userIds) this.unfinished.set(userId, (this.unfinished.get(userId) ?? 0) + 1);
    for (const userId of userIds) {
      if (!this.admission.hasRoom()) await this.admission.roomForOneMore();
      if (this.abort.signal.aborted) return false;
      this.users.start(userId);
    }
    return true;
  }

  private userDone(userId: string): void {
    const times = (this.unfinished.get(userId) ?? 0) - 1;
    if (times > 0) this.unfinished.set(userId, times);
    else this.unfinished.delete(userId);
    if (this.handedOver.has(userId)) this.handedOverDone++;
  }

  /**
   * After a hard stop: a Work that made no progress at all fails, since the next one would start
   * where it did and stop the same way.
   */
  private checkProgress(): void {
    const { config } = this.ctx;
    const ran = `${this.input.hardStopAt - this.startedAt} ms`;
    if (this.handedOver.size > 0 && this.handedOverDone === 0) {
      const stuck = [...this.handedOver].slice(0, 3).join(', ');
      throw new WorkStalledError(
        `none of the ${this.handedOver.size} users handed over to this Work (${stuck}${this.handedOver.size > 3 ? ', ...' : ''}) finished in its whole invocation (${ran} to its hard stop): one user's call with its retries takes longer than a Work has, and handing it over again would loop; nothing was committed. A call may take EXPORT_MAX_ATTEMPTS=${config.maxAttempts} attempts of up to EXPORT_REQUEST_TOTAL_TIMEOUT_MS=${config.requestTotalTimeoutMs} ms, with up to EXPORT_RETRY_MAX_DELAY_MS=${config.retryMaxDelayMs} ms (or the API's longer Retry-After) before each retry: lower those, or give each Work more time (raise the function timeout, or lower EXPORT_DEADLINE_MARGIN_MS=${config.deadlineMarginMs})`,
      );
    }
    if (!this.tookAny) {
      throw new WorkStalledError(
        `not one page of users arrived from ${config.usersTableName} in this Work's whole invocation (${ran} to its hard stop), so it could not make progress; nothing was committed. Reading a page is retried up to EXPORT_DYNAMODB_MAX_ATTEMPTS=${config.dynamodbMaxAttempts} times while DynamoDB throttles: raise the table's read capacity, lower EXPORT_SCAN_PAGE_SIZE=${config.scanPageSize}, or give each Work more time (raise the function timeout, or lower EXPORT_DEADLINE_MARGIN_MS=${config.deadlineMarginMs})`,
      );
    }
  }

  private async checkRunNotOver(): Promise<void> {
    // Abort may have run while this Work was queued or retried (another segment failed).
    if (await this.input.store.isGivenUp()) {
      throw new RunAbandonedError(
        `run ${this.input.store.plan.runId} of ${this.input.store.plan.snapshotId} was already given up (its failed manifest exists); this Work stopped`,
      );
    }
  }

  /** First fatal error wins; every in-flight call and sleep sees the abort at once. */
  private failRun(error: Error): void {
    this.fatal ??= error;
    if (!this.abort.signal.aborted) this.abort.abort(error);
  }

  /** The hard stop: calls and backoff sleeps end now; their users are handed over, not failed. */
  private stopCalls(): void {
    if (this.abort.signal.aborted) return;
    this.hardStopped = true;
    this.abort.abort(
      new DeadlineExceededError(
        `this Work's hard stop (EXPORT_DEADLINE_MARGIN_MS=${this.ctx.config.deadlineMarginMs}): its unfinished users go to the next Work`,
      ),
    );
  }

  private progress(): Progress {
    const elapsedMs = Date.now() - this.startedAt;
    return {
      usersScanned: this.counts.users_scanned,
      usersDone: this.counts.users_processed,
      usersPerSecond: elapsedMs > 0 ? Math.round((this.counts.users_processed * 1000) / elapsedMs) : 0,
      inFlight: this.apiCalls.activeCount,
      concurrency: this.apiCalls.concurrency,
      sessionsExported: this.counts.sessions_exported,
      usersFailed: this.counts.users_failed,
      usersNotFound: this.counts.users_not_found,
      retries: this.counts.retries,
      elapsedMs,
    };
  }

  private startProgressTimer(): () => void {
    const timer = setInterval(() => {
      const p = this.progress();
      this.ctx.logger.info('progress', { segment: this.input.segment, ...p });
    }, this.ctx.config.progressIntervalMs);
    timer.unref();
    const deadline = setTimeout(() => this.stopCalls(), Math.max(0, this.input.hardStopAt - Date.now()));
    deadline.unref();
    return () => {
      clearInterval(timer);
      clearTimeout(deadline);
    };
  }
}
