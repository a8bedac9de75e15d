import type { LimitFunction } from 'p-limit';
import type { Config } from '../core/config';
import { ApiAuthError, ApiThrottledError, SnapshotWriteError, TooManyFailedUsersError } from '../core/errors';
import type { JobLogger } from '../core/observability';
import type { AdaptiveConcurrency } from '../flow/adaptive-concurrency';
import { type RateLimiter, unlimited } from '../flow/rate-limiter';
import { withRetries } from '../flow/retry-policy';
import { USER_NOT_FOUND } from '../moonkey/classify-response';
import type { FetchSessions } from '../moonkey/sessions-client';
import { type ValidatedSessions, type ValidSession, validateSessions } from '../moonkey/validate-sessions';
import { type FailedUser, MANIFEST_FAILED_USERS_LIMIT, type MutableRunCounts } from '../snapshot/manifest';
import type { NdjsonWriter } from '../snapshot/ndjson-writer';
import type { FileKind } from '../snapshot/snapshot-keys';
import type { Admission } from './admission';
import type { PiiCopies } from './pii-copies';
import { tooManyUsersNotFound } from './tolerance';

/** Fields the job adds to every line; a response that carries them has them replaced by ours. */
const OUR_FIELDS = ['snapshot_id', 'run_id', 'snapshot_at', 'observed_at'] as const;

/** The Work's abort stopped this user before anything of it was counted or written. */
const ABANDONED = Symbol('abandoned');

export interface UserExportDeps {
  readonly config: Pick<
    Config,
    'maxAttempts' | 'retryBaseDelayMs' | 'retryMaxDelayMs' | 'failedUsersTolerance' | 'notFoundUsersTolerance'
  >;
  readonly run: { readonly snapshotId: string; readonly runId: string; readonly snapshotAt: number };
  readonly fetchSessions: FetchSessions;
  /** Which copies to write; the one place the policy is applied to a record. */
  readonly copies: PiiCopies;
  readonly apiCalls: LimitFunction;
  readonly rateLimiter: RateLimiter;
  /** AIMD on 429s; moves `apiCalls.concurrency` within [1, the worker's share of EXPORT_CONCURRENCY]. */
  readonly aimd: AdaptiveConcurrency | undefined;
  readonly admission: Admission;
  readonly writers: Record<FileKind, NdjsonWriter>;
  readonly counts: MutableRunCounts;
  readonly failedUsers: FailedUser[];
  readonly logger: JobLogger;
  readonly signal: AbortSignal;
  /** Stops the whole Work at once (first fatal error wins). */
  readonly failRun: (error: Error) => void;
  /**
   * Told once a user is accounted for: counted, and its lines (if any) handed to the writers. A
   * user the abort stopped first is never told: nothing of it was written, so it may be redone.
   */
  readonly onUserDone?: (userId: string) => void;
  readonly now?: () => number;
}

/**
 * One user, start to end: call MoonKey (inside a concurrency slot, under the rate cap, with
 * retries and AIMD feedback), validate, write sessions and rejects, or record the user as failed.
 * Never throws: every outcome is counted, and errors that must stop the run go to `failRun`.
 */
export class UserExport {
  private readonly linePrefix: string;
  private readonly now: () => number;

  constructor(private readonly deps: UserExportDeps) {
    const { run } = deps;
    this.linePrefix = `,"snapshot_id":${JSON.stringify(run.snapshotId)},"run_id":${JSON.stringify(run.runId)},"snapshot_at":${run.snapshotAt},"observed_at":`;
    this.now = deps.now ?? Date.now;
  }

  start(userId: string): void {
    this.deps.admission.userStarted();
    void this.process(userId);
  }

  private async process(userId: string): Promise<void> {
    try {
      if ((await this.exportUser(userId)) !== ABANDONED) this.deps.onUserDone?.(userId);
    } finally {
      this.deps.admission.userFinished();
    }
  }

  private async exportUser(userId: string): Promise<typeof ABANDONED | undefined> {
    const { deps } = this;
    const { signal, counts } = deps;
    if (signal.aborted) return ABANDONED;
    try {
      // Each attempt holds a concurrency slot only while it calls: a user backing off before a
      // retry (say a 429's Retry-After: 1) leaves its slot to another user meanwhile.
      const answer = await withRetries(
        () => {
          deps.admission.attemptQueued();
          return deps.apiCalls(() => this.callOnce(userId, signal));
        },
        {
          maxAttempts: deps.config.maxAttempts,
          baseDelayMs: deps.config.retryBaseDelayMs,
          maxDelayMs: deps.config.retryMaxDelayMs,
        },
        signal,
        () => {
          counts.retries++;
        },
      );
      if (answer === USER_NOT_FOUND) {
        this.recordNotFound(userId);
        return;
      }
      const { valid, rejected } = answer;
      const observedAt = Math.floor(this.now() / 1000);
      const { copies } = deps;
      if (valid.length > 0) {
        counts.users_with_sessions++;
        counts.sessions_exported += valid.length;
        if (copies.writesRaw) {
          let lines = '';
          for (const session of valid) lines += this.toLine(session, observedAt);
          await deps.writers.sessions.write(lines, valid.length);
        }
        if (copies.sessionLine) {
          const { run } = deps;
          const ours = {
            snapshot_id: run.snapshotId,
            run_id: run.runId,
            snapshot_at: run.snapshotAt,
            observed_at: observedAt,
          };
          let lines = '';
          for (const session of valid) lines += copies.sessionLine(session.item, ours);
          await deps.writers['pseudonymized/sessions'].write(lines, valid.length);
        }
      }
      if (rejected.length > 0) {
        counts.items_rejected += rejected.length;
        const ours = { snapshot_id: deps.run.snapshotId, run_id: deps.run.runId };
        if (copies.writesRaw) {
          let lines = '';
          for (const reject of rejected) lines += `${JSON.stringify({ ...ours, ...reject })}\n`;
          await deps.writers.rejects.write(lines, rejected.length);
        }
        if (copies.rejectLine) {
          let lines = '';
          for (const reject of rejected) lines += copies.rejectLine(reject, ours);
          await deps.writers['pseudonymized/rejects'].write(lines, rejected.length);
        }
      }
      counts.users_processed++;
    } catch (error) {
      // Only the call and its backoff listen to the signal, so what fails after the abort is the
      // call: nothing of this user was written. (A writer that failed fails the Work at close.)
      if (signal.aborted) return ABANDONED;
      if (error instanceof ApiAuthError || error instanceof SnapshotWriteError) {
        deps.failRun(error);
        return;
      }
      await this.recordFailedUser(userId, error as Error);
    }
  }

  /** One call inside a concurrency slot: rate cap, request, AIMD feedback, validation. */
  private async callOnce(
    userId: string,
    signal: AbortSignal,
  ): Promise<ValidatedSessions | typeof USER_NOT_FOUND> {
    const { deps } = this;
    try {
      if (signal.aborted) throw signal.reason;
      if (deps.rateLimiter !== unlimited) await deps.rateLimiter.acquire(signal);
      deps.counts.requests++;
      const aimd = deps.aimd;
      let answer: Awaited<ReturnType<FetchSessions>>;
      if (aimd === undefined) answer = await deps.fetchSessions(userId, signal);
      else {
        const ticket = aimd.ticket();
        try {
          answer = await deps.fetchSessions(userId, signal);
        } catch (error) {
          if (error instanceof ApiThrottledError && aimd.onThrottle(ticket))
            deps.apiCalls.concurrency = aimd.limit;
          throw error;
        }
        // A not-found answer is a round trip like any other: it says nothing about our rate.
        if (aimd.onSuccess()) deps.apiCalls.concurrency = aimd.limit;
      }
      return answer === USER_NOT_FOUND
        ? USER_NOT_FOUND
        : validateSessions(userId, answer.body, answer.rawItems);
    } finally {
      deps.admission.attemptFinished();
    }
  }

  /** The session exactly as returned, plus our fields, without re-building the object. */
  private toLine({ item, raw }: ValidSession, observedAt: number): string {
    if (OUR_FIELDS.some((field) => field in item)) {
      const { run } = this.deps;
      return `${JSON.stringify({
        ...item,
        snapshot_id: run.snapshotId,
        run_id: run.runId,
        snapshot_at: run.snapshotAt,
        observed_at: observedAt,
      })}\n`;
    }
    // The item's own text when the client could index it (no re-serialization), else stringify.
    const json = raw ?? JSON.stringify(item);
    const suffix = `${this.linePrefix}${observedAt}}\n`;
    return `${json.slice(0, -1)}${json.length > 2 ? suffix : suffix.slice(1)}`;
  }

  /**
   * A user deleted since the users table was read: no sessions, no lines, not a failure. It is
   * processed (its outcome is known, and it cost a call), so users processed still adds up to the
   * users scanned and usable.
   */
  private recordNotFound(userId: string): void {
    const { deps } = this;
    const { counts } = deps;
    counts.users_not_found++;
    counts.users_processed++;
    if (counts.users_not_found <= 20)
      deps.logger.info('user not found at MoonKey; counted, nothing written', { user_id: userId });
    const tolerance = deps.config.notFoundUsersTolerance;
    // As for failed users: a count tolerance is for the whole run, so one Work above it dooms it.
    // A percentage can only be judged on the whole run's counts, at Commit.
    if (tolerance.kind === 'count' && counts.users_not_found > tolerance.value) {
      deps.failRun(tooManyUsersNotFound(counts.users_not_found, undefined, tolerance));
    }
  }

  private async recordFailedUser(userId: string, error: Error): Promise<void> {
    const { deps } = this;
    const { counts } = deps;
    counts.users_failed++;
    counts.users_processed++;
    const failed: FailedUser = {
      user_id: userId,
      error: deps.copies.failureText(error),
      error_type: error.name,
    };
    if (deps.failedUsers.length < MANIFEST_FAILED_USERS_LIMIT) deps.failedUsers.push(failed);
    if (counts.users_failed <= 20) deps.logger.warn('user failed', { ...failed });
    const tolerance = deps.config.failedUsersTolerance;
    // A count tolerance is for the whole run; one worker alone above it already dooms the run.
    if (tolerance.kind === 'count' && counts.users_failed > tolerance.value) {
      deps.failRun(
        new TooManyFailedUsersError(
          `${counts.users_failed} users failed, more than EXPORT_FAILED_USERS_TOLERANCE=${tolerance.value} allows; the snapshot was not committed`,
        ),
      );
      return;
    }
    try {
      await deps.writers['failed-users'].write(
        `${JSON.stringify({ snapshot_id: deps.run.snapshotId, run_id: deps.run.runId, ...failed })}\n`,
        1,
      );
    } catch (writeError) {
      deps.failRun(writeError as Error);
    }
  }
}
