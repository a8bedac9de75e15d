import { setMaxListeners } from 'node:events';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import pLimit, { type LimitFunction } from 'p-limit';
import { type Config, effectiveSettings } from '../core/config';
import {
  ApiAuthError,
  DeadlineExceededError,
  SnapshotWriteError,
  TooManyFailedUsersError,
} from '../core/errors';
import type { JobLogger, MetricsSink } from '../core/observability';
import { AdaptiveConcurrency } from '../flow/adaptive-concurrency';
import { createRateLimiter, type RateLimiter, unlimited } from '../flow/rate-limiter';
import { withRetries } from '../flow/retry-policy';
import { ApiThrottledError, type FetchSessions, rawJsonOf } from '../moonkey/sessions-client';
import { type ValidatedSessions, validateSessions } from '../moonkey/validate-sessions';
import {
  abortFiles,
  completeFiles,
  deleteStaleFiles,
  isCommittedManifest,
  putJson,
} from '../snapshot/commit-snapshot';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import {
  type FailedUser,
  MANIFEST_FAILED_USERS_LIMIT,
  type Manifest,
  type SnapshotStatus,
} from '../snapshot/manifest';
import { NdjsonWriter } from '../snapshot/ndjson-writer';
import { type FileKind, SnapshotKeys } from '../snapshot/snapshot-keys';
import type { RunPlan } from './run-plan';
import { type ScanSlice, scanUsers } from './scan-users';

/**
 * Users started beyond the concurrency limit, so a slot that frees is refilled from p-limit's
 * queue at once rather than after the scan loop wakes up.
 */
const FEED_AHEAD = 16;

/** Clients and sinks built once per cold start and handed in, so tests can aim them anywhere. */
export interface ExportContext {
  readonly config: Config;
  readonly s3: S3Client;
  readonly dynamodb: DynamoDBClient;
  readonly fetchSessions: FetchSessions;
  readonly logger: JobLogger;
  readonly metrics: MetricsSink;
}

export interface Progress {
  readonly usersScanned: number;
  readonly usersDone: number;
  readonly usersPerSecond: number;
  readonly inFlight: number;
  /** Calls allowed in flight now: EXPORT_CONCURRENCY, or less while adaptive concurrency backs off. */
  readonly concurrency: number;
  readonly sessionsExported: number;
  readonly usersFailed: number;
  readonly retries: number;
  readonly elapsedMs: number;
}

export interface RunOptions {
  /** Epoch ms when the process will be killed (Lambda's deadline); the run stops cleanly before it. */
  readonly deadlineAt?: number;
  readonly onProgress?: (progress: Progress) => void;
}

export interface RunOutcome {
  readonly manifest: Manifest;
  /** Where the manifest was written; undefined for a dry run, which writes nothing. */
  readonly manifestKey: string | undefined;
  /** Why the run failed; undefined when it committed. */
  readonly error: Error | undefined;
}

/**
 * One snapshot, start to finish: walk the users (scan slices or an audit's list), fetch and
 * validate each user's sessions with bounded concurrency, stream them into invisible multipart
 * uploads, then either commit (complete uploads, drop stale files, manifest) or abort everything
 * and write a failed manifest. Never throws for a run failure: the outcome says what happened.
 */
export async function runExport(
  plan: RunPlan,
  ctx: ExportContext,
  options: RunOptions = {},
): Promise<RunOutcome> {
  return new ExportRun(plan, ctx, options).run();
}

class ExportRun {
  private readonly config: Config;
  private readonly keys: SnapshotKeys;
  private readonly abort = new AbortController();
  private readonly limit: LimitFunction;
  private readonly limiter: RateLimiter;
  /** AIMD on 429s (EXPORT_ADAPTIVE_CONCURRENCY); moves `limit.concurrency` within [1, EXPORT_CONCURRENCY]. */
  private readonly aimd: AdaptiveConcurrency | undefined;
  private readonly writers: Record<FileKind, NdjsonWriter>;
  private readonly startedAt = Date.now();
  private readonly maxOutstanding: number;
  private outstanding = 0;
  /** Attempts handed to the concurrency limit and not finished (running or queued in p-limit). */
  private wanting = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private readonly idleWaiters: (() => void)[] = [];
  private readonly failedUsers: FailedUser[] = [];
  private readonly recordSuffix: string;
  private readonly counts = {
    users_scanned: 0,
    users_unusable: 0,
    users_processed: 0,
    users_with_sessions: 0,
    sessions_exported: 0,
    users_failed: 0,
    items_rejected: 0,
    requests: 0,
    retries: 0,
  };

  constructor(
    private readonly plan: RunPlan,
    private readonly ctx: ExportContext,
    private readonly options: RunOptions,
  ) {
    this.config = ctx.config;
    // Every in-flight call and backoff sleep listens to this one signal.
    setMaxListeners(0, this.abort.signal);
    this.keys = new SnapshotKeys(this.config.prefix, plan);
    this.limit = pLimit(this.config.concurrency);
    this.limiter = this.config.maxRps === undefined ? unlimited : createRateLimiter(this.config.maxRps);
    this.aimd = this.config.adaptiveConcurrency
      ? new AdaptiveConcurrency({ max: this.config.concurrency })
      : undefined;
    // Ids waiting beyond those in flight: enough to keep every slot busy between scan pages,
    // small enough that memory does not grow with the table.
    this.maxOutstanding = this.config.concurrency * 2 + 32;
    const writer = (kind: FileKind) =>
      new NdjsonWriter({
        s3: ctx.s3,
        bucket: this.config.bucket,
        keyForFile: (index) => this.keys.fileKey(kind, 0, index),
        targetFileBytes: this.config.targetFileBytes,
        partBytes: this.config.uploadPartBytes,
        gzipLevel: this.config.gzipLevel,
      });
    this.writers = {
      sessions: writer('sessions'),
      rejects: writer('rejects'),
      'failed-users': writer('failed-users'),
    };
    this.recordSuffix = `,"snapshot_id":${JSON.stringify(plan.snapshotId)},"snapshot_at":${plan.snapshotAt}}`;
  }

  async run(): Promise<RunOutcome> {
    const { logger } = this.ctx;
    logger.info('snapshot started', {
      snapshotId: this.plan.snapshotId,
      trigger: this.plan.trigger,
      reason: this.plan.reason,
      users: this.plan.users.kind === 'list' ? this.plan.users.userIds.length : 'scan',
      dryRun: this.plan.dryRun,
      settings: effectiveSettings(this.config),
    });
    const stopTimers = this.startTimers();
    try {
      if (this.plan.dryRun) return await this.dryRun();
      await this.walkUsers();
      await this.drained();
      this.throwIfAborted();
      const files = await this.closeWriters();
      this.checkTolerance();
      return await this.commit(files);
    } catch (error) {
      return await this.fail(error as Error);
    } finally {
      stopTimers();
    }
  }

  private async walkUsers(): Promise<void> {
    const users = this.plan.users;
    if (users.kind === 'list') {
      for (const userId of users.userIds) {
        if (this.abort.signal.aborted) return;
        this.counts.users_scanned++;
        if (!this.hasRoom()) await this.roomForOneMore();
        this.start(userId);
      }
      return;
    }
    await Promise.all(this.wholeTable().map((slice) => this.walkSlice(slice)));
  }

  /** One slice per parallel-scan segment, each from its start. */
  private wholeTable(): ScanSlice[] {
    const totalSegments = this.config.scanSegments;
    return Array.from({ length: totalSegments }, (_, segment) => ({
      segment,
      totalSegments,
      cursor: undefined,
    }));
  }

  private pages(slice: ScanSlice) {
    return scanUsers(this.ctx.dynamodb, slice, {
      tableName: this.config.usersTableName,
      idAttribute: this.config.userIdAttribute,
      pageSize: this.config.scanPageSize,
      signal: this.abort.signal,
    });
  }

  /**
   * Walks one slice to its end, or until the run is aborted; returns the cursor it stopped at
   * (undefined when the slice is finished), which is what a multi-invocation orchestrator resumes from.
   */
  private async walkSlice(slice: ScanSlice): Promise<ScanSlice['cursor']> {
    const pages = this.pages(slice);
    let cursor = slice.cursor;
    try {
      for await (const page of pages) {
        this.counts.users_scanned += page.userIds.length;
        this.counts.users_unusable += page.unusable;
        for (const userId of page.userIds) {
          if (this.abort.signal.aborted) return cursor;
          if (!this.hasRoom()) await this.roomForOneMore();
          this.start(userId);
        }
        cursor = page.nextCursor;
      }
    } catch (error) {
      this.failRun(error as Error);
    }
    return cursor;
  }

  /**
   * Backpressure on the walk. `outstanding` counts users started and not finished (calling,
   * queued for a slot, or backing off before a retry), capped at maxOutstanding; and a user
   * starts only when fewer than `concurrency + FEED_AHEAD` attempts want a slot. Users start
   * just in time: one waiting in a long p-limit queue carries a dozen promises and closures
   * that outlive young-generation GCs; the scan's read-ahead (scan-users.ts) keeps the next ids
   * ready as plain strings instead. Checked synchronously so a user with room costs no await.
   */
  private hasRoom(): boolean {
    return this.outstanding < this.maxOutstanding && this.wanting < this.limit.concurrency + FEED_AHEAD;
  }

  private async roomForOneMore(): Promise<void> {
    while (!this.hasRoom()) await new Promise<void>((resolve) => this.slotWaiters.push(resolve));
  }

  private start(userId: string): void {
    this.outstanding++;
    void this.processUser(userId);
  }

  private userFinished(): void {
    this.outstanding--;
    this.wake();
    if (this.outstanding === 0) for (const wake of this.idleWaiters.splice(0)) wake();
  }

  private wake(): void {
    this.slotWaiters.shift()?.();
  }

  private async drained(): Promise<void> {
    while (this.outstanding > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  /** Never throws: every outcome is counted; the user's slot in `outstanding` is given back. */
  private async processUser(userId: string): Promise<void> {
    try {
      await this.exportUser(userId);
    } finally {
      this.userFinished();
    }
  }

  private async exportUser(userId: string): Promise<void> {
    const signal = this.abort.signal;
    if (signal.aborted) return;
    try {
      // Each attempt holds a concurrency slot only while it calls: a user backing off before a
      // retry (say a 429's Retry-After: 1) leaves its slot to another user meanwhile.
      const { valid, rejected } = await withRetries(
        () => {
          this.wanting++;
          return this.limit(() => this.attempt(userId, signal));
        },
        {
          maxAttempts: this.config.maxAttempts,
          baseDelayMs: this.config.retryBaseDelayMs,
          maxDelayMs: this.config.retryMaxDelayMs,
        },
        signal,
        () => {
          this.counts.retries++;
        },
      );
      if (valid.length > 0) {
        let lines = '';
        for (const session of valid) lines += this.toLine(session);
        this.counts.users_with_sessions++;
        this.counts.sessions_exported += valid.length;
        await this.writers.sessions.write(lines, valid.length);
      }
      if (rejected.length > 0) {
        let lines = '';
        for (const reject of rejected)
          lines += `${JSON.stringify({ snapshot_id: this.plan.snapshotId, ...reject })}\n`;
        this.counts.items_rejected += rejected.length;
        await this.writers.rejects.write(lines, rejected.length);
      }
      this.counts.users_processed++;
    } catch (error) {
      if (signal.aborted) return;
      if (error instanceof ApiAuthError || error instanceof SnapshotWriteError) {
        this.failRun(error);
        return;
      }
      await this.recordFailedUser(userId, error as Error);
    }
  }

  /** One call inside a concurrency slot: rate cap, request, AIMD feedback, validation. */
  private async attempt(userId: string, signal: AbortSignal): Promise<ValidatedSessions> {
    try {
      if (signal.aborted) throw signal.reason;
      if (this.limiter !== unlimited) await this.limiter.acquire(signal);
      this.counts.requests++;
      const aimd = this.aimd;
      if (aimd === undefined) return validateSessions(userId, await this.ctx.fetchSessions(userId, signal));
      const ticket = aimd.ticket();
      let body: unknown;
      try {
        body = await this.ctx.fetchSessions(userId, signal);
      } catch (error) {
        if (error instanceof ApiThrottledError && aimd.onThrottle(ticket))
          this.limit.concurrency = aimd.limit;
        throw error;
      }
      if (aimd.onSuccess()) this.limit.concurrency = aimd.limit;
      return validateSessions(userId, body);
    } finally {
      this.wanting--;
      this.wake();
    }
  }

  /** The session exactly as returned, plus snapshot_id/snapshot_at, without re-building the object. */
  private toLine(session: Record<string, unknown>): string {
    if ('snapshot_id' in session || 'snapshot_at' in session) {
      return `${JSON.stringify({ ...session, snapshot_id: this.plan.snapshotId, snapshot_at: this.plan.snapshotAt })}\n`;
    }
    // The item's own text when the client could index it (no re-serialization), else stringify.
    // A validated session always has fields, so neither form is an empty object here; the
    // check stays for the stringify path's sake.
    const json = rawJsonOf(session) ?? JSON.stringify(session);
    return `${json.slice(0, -1)}${json.length > 2 ? this.recordSuffix : this.recordSuffix.slice(1)}\n`;
  }

  private async recordFailedUser(userId: string, error: Error): Promise<void> {
    this.counts.users_failed++;
    this.counts.users_processed++;
    const failed: FailedUser = { user_id: userId, error: error.message, error_type: error.name };
    if (this.failedUsers.length < MANIFEST_FAILED_USERS_LIMIT) this.failedUsers.push(failed);
    if (this.counts.users_failed <= 20) this.ctx.logger.warn('user failed', { ...failed });
    const tolerance = this.config.failedUsersTolerance;
    if (tolerance.kind === 'count' && this.counts.users_failed > tolerance.value) {
      this.failRun(
        new TooManyFailedUsersError(
          `${this.counts.users_failed} users failed, more than EXPORT_FAILED_USERS_TOLERANCE=${tolerance.value} allows; the snapshot was not committed`,
        ),
      );
      return;
    }
    try {
      await this.writers['failed-users'].write(
        `${JSON.stringify({ snapshot_id: this.plan.snapshotId, ...failed })}\n`,
        1,
      );
    } catch (writeError) {
      this.failRun(writeError as Error);
    }
  }

  private checkTolerance(): void {
    const tolerance = this.config.failedUsersTolerance;
    if (tolerance.kind !== 'percent') return;
    const allowed = (this.counts.users_processed * tolerance.value) / 100;
    if (this.counts.users_failed > allowed) {
      throw new TooManyFailedUsersError(
        `${this.counts.users_failed} of ${this.counts.users_processed} users failed, more than EXPORT_FAILED_USERS_TOLERANCE=${tolerance.value}% allows; the snapshot was not committed`,
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

  private async closeWriters(): Promise<PendingFile[]> {
    const [sessions, rejects, failed] = await Promise.all([
      this.writers.sessions.close(),
      this.writers.rejects.close(),
      this.writers['failed-users'].close(),
    ]);
    return [...sessions, ...rejects, ...failed];
  }

  private async commit(files: PendingFile[]): Promise<RunOutcome> {
    try {
      await completeFiles(this.ctx.s3, this.config.bucket, files);
    } catch (error) {
      // Some uploads may have completed: remove every file of this snapshot rather than leave a mix.
      await abortFiles(this.ctx.s3, this.config.bucket, files);
      await deleteStaleFiles(this.ctx.s3, this.config.bucket, this.allFilePrefixes(), new Set()).catch(
        () => [],
      );
      throw error;
    }
    const stale = await deleteStaleFiles(
      this.ctx.s3,
      this.config.bucket,
      this.allFilePrefixes(),
      new Set(files.map((f) => f.key)),
    );
    if (stale.length > 0)
      this.ctx.logger.info('removed files of an earlier run of this snapshot', { count: stale.length });
    const manifest = this.manifest('committed', undefined, files);
    const manifestKey = this.keys.manifestKey();
    await putJson(this.ctx.s3, this.config.bucket, manifestKey, manifest);
    this.finish(manifest, manifestKey);
    return { manifest, manifestKey, error: undefined };
  }

  private async fail(error: Error): Promise<RunOutcome> {
    this.failRun(error);
    const reason = (this.abort.signal.reason as Error | undefined) ?? error;
    await this.drained();
    const pending = (
      await Promise.all([
        this.writers.sessions.abort(),
        this.writers.rejects.abort(),
        this.writers['failed-users'].abort(),
      ])
    ).flat();
    const notAborted = await abortFiles(this.ctx.s3, this.config.bucket, pending);
    if (notAborted > 0) {
      this.ctx.logger.warn(
        'some multipart uploads could not be aborted; the bucket lifecycle rule removes them',
        {
          count: notAborted,
        },
      );
    }
    const manifest = this.manifest('failed', reason, []);
    let manifestKey: string | undefined = this.keys.manifestKey();
    try {
      // A failed rerun must not make an earlier committed run of the same slot look failed.
      if (await isCommittedManifest(this.ctx.s3, this.config.bucket, manifestKey)) {
        manifestKey = this.keys.manifestKey(`.failed-${Date.now()}`);
      }
      await putJson(this.ctx.s3, this.config.bucket, manifestKey, manifest);
    } catch (manifestError) {
      this.ctx.logger.error('could not write the failed manifest', {
        error: (manifestError as Error).message,
      });
      manifestKey = undefined;
    }
    this.finish(manifest, manifestKey);
    return { manifest, manifestKey, error: reason };
  }

  private async dryRun(): Promise<RunOutcome> {
    const users = this.plan.users;
    if (users.kind === 'list') {
      this.counts.users_scanned = users.userIds.length;
    } else {
      await Promise.all(
        this.wholeTable().map(async (slice) => {
          for await (const page of this.pages(slice)) {
            this.counts.users_scanned += page.userIds.length;
            this.counts.users_unusable += page.unusable;
          }
        }),
      );
    }
    const manifest = this.manifest('dry_run', undefined, []);
    this.ctx.logger.info('dry run finished: nothing was called or written', { counts: manifest.counts });
    return { manifest, manifestKey: undefined, error: undefined };
  }

  private allFilePrefixes(): string[] {
    return (['sessions', 'rejects', 'failed-users'] as const).map((kind) => this.keys.filePrefix(kind));
  }

  private manifest(status: SnapshotStatus, error: Error | undefined, files: PendingFile[]): Manifest {
    const finishedAt = Date.now();
    const describe = (kind: FileKind) =>
      files
        .filter((f) => f.key.startsWith(this.keys.filePrefix(kind)))
        .map((f) => ({ key: f.key, bytes: f.bytes, records: f.records }));
    return {
      manifest_version: 1,
      snapshot_id: this.plan.snapshotId,
      trigger: this.plan.trigger,
      reason: this.plan.reason ?? null,
      status,
      error: error ? { type: error.name, message: error.message } : null,
      dt: this.keys.dt,
      snapshot_at: this.plan.snapshotAt,
      started_at: new Date(this.startedAt).toISOString(),
      finished_at: new Date(finishedAt).toISOString(),
      duration_ms: finishedAt - this.startedAt,
      table_location: `s3://${this.config.bucket}/${this.keys.tableLocation()}`,
      counts: { ...this.counts },
      files: {
        sessions: describe('sessions'),
        rejects: describe('rejects'),
        failed_users: describe('failed-users'),
      },
      failed_users: [...this.failedUsers],
      failed_users_truncated: this.counts.users_failed > this.failedUsers.length,
      settings: effectiveSettings(this.config),
    };
  }

  private finish(manifest: Manifest, manifestKey: string | undefined): void {
    this.ctx.metrics({
      usersProcessed: manifest.counts.users_processed,
      usersFailed: manifest.counts.users_failed,
      sessionsExported: manifest.counts.sessions_exported,
      itemsRejected: manifest.counts.items_rejected,
      retries: manifest.counts.retries,
      durationSeconds: manifest.duration_ms / 1000,
      committed: manifest.status === 'committed',
      trigger: manifest.trigger,
    });
    const log = manifest.status === 'failed' ? this.ctx.logger.error : this.ctx.logger.info;
    log.call(this.ctx.logger, `snapshot ${manifest.status}`, {
      snapshotId: manifest.snapshot_id,
      manifestKey,
      error: manifest.error,
      counts: manifest.counts,
      files: manifest.files.sessions.length,
      durationMs: manifest.duration_ms,
      ...(this.aimd
        ? {
            adaptiveConcurrency: {
              decreases: this.aimd.decreases,
              lowest: this.aimd.lowest,
              final: this.aimd.limit,
              max: this.aimd.max,
            },
          }
        : {}),
    });
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

  private startTimers(): () => void {
    const progress = setInterval(() => {
      const p = this.progress();
      this.ctx.logger.info('progress', { ...p });
      this.options.onProgress?.(p);
    }, this.config.progressIntervalMs);
    progress.unref();
    let deadline: NodeJS.Timeout | undefined;
    if (this.options.deadlineAt !== undefined) {
      const stopAt = this.options.deadlineAt - this.config.deadlineMarginMs;
      deadline = setTimeout(
        () =>
          this.failRun(
            new DeadlineExceededError(
              `stopped ${this.config.deadlineMarginMs} ms before the Lambda deadline with ${this.counts.users_processed} users done; nothing was committed. Raise the timeout, EXPORT_CONCURRENCY or EXPORT_MAX_RPS, or run the export in slices`,
            ),
          ),
        Math.max(0, stopAt - Date.now()),
      );
      deadline.unref();
    }
    return () => {
      clearInterval(progress);
      if (deadline) clearTimeout(deadline);
    };
  }
}
