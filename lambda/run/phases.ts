import { DescribeTableCommand } from '@aws-sdk/client-dynamodb';
import { effectiveSettings } from '../core/config';
import { abortRun, commitRun, takeOverSlot } from '../snapshot/commit';
import type { PendingFile } from '../snapshot/gzip-multipart-file';
import {
  type FailedUser,
  MANIFEST_FAILED_USERS_LIMIT,
  type Manifest,
  type RunCounts,
  type SnapshotStatus,
  sumCounts,
} from '../snapshot/manifest';
import { deleteKeys, getJson, listKeys, putJson } from '../snapshot/s3-objects';
import { type FileKind, SnapshotKeys } from '../snapshot/snapshot-keys';
import type { ExportContext } from './job-context';
import type { RunPlan } from './run-plan';
import {
  collectSteps,
  decodeCursor,
  encodeCursor,
  loadHandedOver,
  loadPlan,
  type StoredPlan,
  savePlan,
  saveStep,
} from './run-state';
import { toleranceError } from './tolerance';
import { type Progress, runWork } from './work';

/** What every phase after Plan receives: small, whatever the table size. */
export interface RunRef {
  readonly snapshotId: string;
  readonly runId: string;
  readonly dt: string;
  readonly planKey: string;
  readonly dryRun: boolean;
}

export interface SliceState {
  readonly segment: number;
  readonly totalSegments: number;
  /** Where the segment continues (an encoded Work cursor); null before its first step. */
  readonly cursor: string | null;
  readonly step: number;
  /** The segment's last Work step object; Commit walks the chain back from it. */
  readonly tail: string | null;
}

export interface PlanOutput {
  readonly run: RunRef;
  readonly segments: readonly { readonly segment: number; readonly totalSegments: number }[];
}

export interface WorkOutput {
  readonly run: RunRef;
  readonly slice: SliceState;
  readonly done: boolean;
}

export interface RunOutcome {
  readonly manifest: Manifest;
  /** Where the manifest was written; undefined for a dry run, which writes none. */
  readonly manifestKey: string | undefined;
  /** Why the run failed; undefined when it committed. */
  readonly error: Error | undefined;
}

/** Segments chosen for `auto`: one per this many items, so a Work's share of a big table stays modest. */
export const USERS_PER_AUTO_SEGMENT = 250_000;
/** Inline Map runs up to 40 iterations at once; more segments would only queue. */
export const MAX_AUTO_SEGMENTS = 40;

const keysOf = (ctx: ExportContext, plan: Pick<RunPlan, 'snapshotId' | 'snapshotAt' | 'runId'>) =>
  new SnapshotKeys(ctx.config.prefix, plan.snapshotId, plan.snapshotAt, plan.runId);

/**
 * PLAN: fixes the run (its plan is stored in S3 for the later phases), takes the slot over from
 * any earlier run that died (aborting its open uploads), and chooses the segments.
 */
export async function planPhase(ctx: ExportContext, plan: RunPlan): Promise<PlanOutput> {
  const keys = keysOf(ctx, plan);
  const totalSegments = plan.users.kind === 'list' ? 1 : await chooseSegments(ctx);
  ctx.logger.info('snapshot started', {
    snapshotId: plan.snapshotId,
    runId: plan.runId,
    trigger: plan.trigger,
    reason: plan.reason,
    users: plan.users.kind === 'list' ? plan.users.userIds.length : 'scan',
    segments: totalSegments,
    dryRun: plan.dryRun,
    settings: effectiveSettings(ctx.config),
  });
  const stored: StoredPlan = { plan, totalSegments, settings: effectiveSettings(ctx.config) };
  await savePlan(ctx.s3, ctx.config.bucket, keys.planKey(), stored);
  if (!plan.dryRun) await takeOverSlot({ s3: ctx.s3, bucket: ctx.config.bucket, keys, logger: ctx.logger });
  return {
    run: {
      snapshotId: plan.snapshotId,
      runId: plan.runId,
      dt: keys.dt,
      planKey: keys.planKey(),
      dryRun: plan.dryRun,
    },
    segments: Array.from({ length: totalSegments }, (_, segment) => ({ segment, totalSegments })),
  };
}

async function chooseSegments(ctx: ExportContext): Promise<number> {
  const configured = ctx.config.scanSegments;
  if (configured !== 'auto') return configured;
  try {
    const table = await ctx.dynamodb.send(new DescribeTableCommand({ TableName: ctx.config.usersTableName }));
    const items = table.Table?.ItemCount ?? 0;
    return Math.max(
      1,
      Math.min(MAX_AUTO_SEGMENTS, ctx.config.concurrency, Math.ceil(items / USERS_PER_AUTO_SEGMENT)),
    );
  } catch (error) {
    // ItemCount is only a hint (DynamoDB refreshes it about every six hours); one segment still works.
    ctx.logger.warn('could not size the table; using one segment', { error: (error as Error).message });
    return 1;
  }
}

export interface WorkOptions {
  /** Unique per invocation (Lambda's request id): names this attempt's files and state object. */
  readonly attempt: string;
  /** Epoch ms after which this Work starts no new page. */
  readonly stopAt?: number;
  /** Epoch ms at which this Work stops its calls and hands over (see WorkInput.hardStopAt). */
  readonly hardStopAt?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (progress: Progress) => void;
  /** Ask S3 before each page whether the run was given up (separate invocations; not in-process). */
  readonly checkRunOver?: boolean;
}

/**
 * WORK: one step of one segment; its result goes to S3, and the state carries only its key.
 * Users the previous step handed over (its `pending`, read from the slice's tail) come first.
 */
export async function workPhase(
  ctx: ExportContext,
  run: RunRef,
  slice: SliceState,
  options: WorkOptions,
): Promise<WorkOutput> {
  const { plan } = await loadPlan(ctx.s3, ctx.config.bucket, run.planKey);
  const keys = keysOf(ctx, plan);
  const attempt =
    options.attempt
      .replace(/[^A-Za-z0-9]/g, '')
      .slice(0, 12)
      .toLowerCase() || 'local';
  const writerId = `s${String(slice.segment).padStart(3, '0')}-${String(slice.step).padStart(5, '0')}-${attempt}`;
  const cursor = decodeCursor(slice.cursor, plan);
  const handedOver =
    cursor.kind === 'handover' ? await loadHandedOver(ctx.s3, ctx.config.bucket, slice.tail, cursor) : [];
  const result = await runWork(
    {
      plan,
      keys,
      segment: slice.segment,
      totalSegments: slice.totalSegments,
      cursor: cursor.kind === 'handover' ? cursor.after : cursor,
      handedOver,
      writerId,
      stopAt: options.stopAt,
      hardStopAt: options.hardStopAt,
      signal: options.signal,
      onProgress: options.onProgress,
      onFailure: (partial) =>
        putJson(ctx.s3, ctx.config.bucket, keys.failedWorkKey(slice.segment, slice.step, attempt), partial),
      isRunOver: options.checkRunOver
        ? async () =>
            (await getJson<Manifest>(ctx.s3, ctx.config.bucket, keys.manifestKey()))?.status === 'failed'
        : undefined,
    },
    ctx,
  );
  const stepKey = keys.workStepKey(slice.segment, slice.step, attempt);
  await saveStep(ctx.s3, ctx.config.bucket, stepKey, {
    prev: slice.tail,
    segment: slice.segment,
    step: slice.step,
    attempt,
    files: result.files,
    counts: result.counts,
    failedUsers: result.failedUsers,
    pending: result.pending,
    next: result.next ?? null,
  });
  return {
    run,
    slice: { ...slice, cursor: encodeCursor(result.next), step: slice.step + 1, tail: stepKey },
    done: result.next === undefined,
  };
}

/**
 * COMMIT: gathers every segment's steps, checks the run-wide failure tolerance, and commits the
 * pending files as one snapshot (snapshot/commit.ts). Throws when the run must fail; the caller
 * (the state machine's Catch, or the local driver) then runs ABORT.
 */
export async function commitPhase(
  ctx: ExportContext,
  run: RunRef,
  tails: readonly (string | null)[],
): Promise<RunOutcome> {
  const stored = await loadPlan(ctx.s3, ctx.config.bucket, run.planKey);
  const { plan } = stored;
  const keys = keysOf(ctx, plan);
  const steps = await collectSteps(ctx.s3, ctx.config.bucket, tails);
  const counts = sumCounts(steps.map((s) => s.counts));
  const failedUsers = steps.flatMap((s) => s.failedUsers).slice(0, MANIFEST_FAILED_USERS_LIMIT);
  const files = steps.flatMap((s) => s.files);
  if (plan.dryRun) {
    const manifest = buildManifest(ctx, stored, 'dry_run', { counts, failedUsers, files: [] });
    // The plan and steps were the only objects written; a dry run leaves nothing behind.
    await deleteKeys(
      ctx.s3,
      ctx.config.bucket,
      await listKeys(ctx.s3, ctx.config.bucket, keys.runStatePrefix()),
    );
    ctx.logger.info('dry run finished: nothing was called or written', { counts });
    return { manifest, manifestKey: undefined, error: undefined };
  }
  checkTolerance(ctx, counts);
  const manifest = buildManifest(ctx, stored, 'committed', { counts, failedUsers, files });
  const { manifestKey, cleanup } = await commitRun(
    { s3: ctx.s3, bucket: ctx.config.bucket, keys, logger: ctx.logger },
    files,
    manifest,
  );
  if (cleanup.visibleRunId !== undefined && cleanup.visibleRunId !== plan.runId) {
    ctx.logger.warn('a newer run of this snapshot committed first; readers show that one', {
      visibleRunId: cleanup.visibleRunId,
    });
  }
  finish(ctx, plan, manifest, manifestKey);
  return { manifest, manifestKey, error: undefined };
}

function checkTolerance(ctx: ExportContext, counts: RunCounts): void {
  const error = toleranceError(counts, ctx.config);
  if (error) throw error;
}

export interface AbortInput {
  readonly run: RunRef;
  readonly error: { readonly type: string; readonly message: string };
  /** The phase that failed (Plan, Work, Commit), when a state machine ran the run. */
  readonly failedStep?: string;
  /** Open uploads the caller still knows of (an in-process run's); recorded ones are found anyway. */
  readonly pending?: readonly PendingFile[];
  /** Steps whose counts the failed manifest should show (an in-process run's). */
  readonly tails?: readonly (string | null)[];
}

/**
 * ABORT: the run will not commit. Aborts every open upload of the run, removes any file of it a
 * partial commit completed, and writes the failed manifest saying which step failed and why.
 */
export async function abortPhase(ctx: ExportContext, input: AbortInput): Promise<RunOutcome> {
  const stored = await loadPlan(ctx.s3, ctx.config.bucket, input.run.planKey);
  const { plan } = stored;
  const keys = keysOf(ctx, plan);
  // What is known of the work done: finished steps the caller can name, plus failed steps'
  // own records. Partial by nature (a step killed outright leaves no record); the failed
  // manifest says what is known, never more.
  const done = input.tails ? await collectSteps(ctx.s3, ctx.config.bucket, input.tails).catch(() => []) : [];
  const failedSteps = await failedWorkRecords(ctx, keys);
  const counts = sumCounts([...done, ...failedSteps].map((s) => s.counts));
  const failedUsers = [...done, ...failedSteps]
    .flatMap((s) => s.failedUsers)
    .slice(0, MANIFEST_FAILED_USERS_LIMIT);
  const error = Object.assign(new Error(input.error.message), { name: input.error.type });
  const manifest = buildManifest(
    ctx,
    stored,
    'failed',
    { counts, failedUsers, files: [] },
    {
      type: input.error.type,
      message: input.error.message,
      ...(input.failedStep ? { step: input.failedStep } : {}),
    },
  );
  const result = await abortRun(
    { s3: ctx.s3, bucket: ctx.config.bucket, keys, logger: ctx.logger },
    manifest,
    input.pending ?? [],
  );
  if (result.alreadyCommitted) {
    const committed = (await getJson<Manifest>(ctx.s3, ctx.config.bucket, keys.manifestKey())) ?? manifest;
    return { manifest: committed, manifestKey: result.manifestKey, error: undefined };
  }
  finish(ctx, plan, manifest, result.manifestKey);
  return { manifest, manifestKey: result.manifestKey, error };
}

async function failedWorkRecords(
  ctx: ExportContext,
  keys: SnapshotKeys,
): Promise<{ counts: RunCounts; failedUsers: FailedUser[] }[]> {
  try {
    const recordKeys = (await listKeys(ctx.s3, ctx.config.bucket, keys.workStatePrefix())).filter((k) =>
      k.endsWith('.failed.json'),
    );
    const records = await Promise.all(
      recordKeys.map((k) =>
        getJson<{ counts: RunCounts; failedUsers: FailedUser[] }>(ctx.s3, ctx.config.bucket, k),
      ),
    );
    return records.filter((r) => r !== undefined);
  } catch {
    return [];
  }
}

function buildManifest(
  ctx: ExportContext,
  stored: StoredPlan,
  status: SnapshotStatus,
  parts: { counts: RunCounts; failedUsers: readonly FailedUser[]; files: readonly PendingFile[] },
  error: Manifest['error'] = null,
): Manifest {
  const { plan } = stored;
  const keys = keysOf(ctx, plan);
  const finishedAt = Date.now();
  const startedAt = Date.parse(plan.startedAt);
  const describe = (kind: FileKind) =>
    parts.files
      .filter((f) => f.key.startsWith(keys.runFilePrefix(kind)))
      .map((f) => ({ key: f.key, bytes: f.bytes, records: f.records }));
  return {
    manifest_version: 2,
    snapshot_id: plan.snapshotId,
    run_id: plan.runId,
    trigger: plan.trigger,
    reason: plan.reason ?? null,
    status,
    error,
    dt: keys.dt,
    snapshot_at: plan.snapshotAt,
    started_at: plan.startedAt,
    finished_at: new Date(finishedAt).toISOString(),
    duration_ms: finishedAt - startedAt,
    table_location: `s3://${ctx.config.bucket}/${keys.tableLocation()}`,
    counts: parts.counts,
    files: {
      sessions: describe('sessions'),
      rejects: describe('rejects'),
      failed_users: describe('failed-users'),
      pseudonymized_sessions: describe('pseudonymized/sessions'),
      pseudonymized_rejects: describe('pseudonymized/rejects'),
    },
    failed_users: [...parts.failedUsers],
    failed_users_truncated: parts.counts.users_failed > parts.failedUsers.length,
    settings: { ...stored.settings, segments: stored.totalSegments },
    pii: ctx.pii.manifestEntry,
  };
}

/** One metrics record and one log line per run, when it ends either way. */
function finish(
  ctx: ExportContext,
  plan: RunPlan,
  manifest: Manifest,
  manifestKey: string | undefined,
): void {
  ctx.metrics({
    usersProcessed: manifest.counts.users_processed,
    usersFailed: manifest.counts.users_failed,
    usersNotFound: manifest.counts.users_not_found,
    sessionsExported: manifest.counts.sessions_exported,
    itemsRejected: manifest.counts.items_rejected,
    retries: manifest.counts.retries,
    durationSeconds: manifest.duration_ms / 1000,
    committed: manifest.status === 'committed',
    trigger: manifest.trigger,
  });
  const log = manifest.status === 'failed' ? ctx.logger.error : ctx.logger.info;
  log.call(ctx.logger, `snapshot ${manifest.status}`, {
    snapshotId: manifest.snapshot_id,
    runId: plan.runId,
    manifestKey,
    error: manifest.error,
    counts: manifest.counts,
    files: manifest.files.sessions.length,
    durationMs: manifest.duration_ms,
  });
}
