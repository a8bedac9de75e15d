import type { PendingFile } from './gzip-multipart-file';
import type { FileKind, SnapshotKeys } from './snapshot-keys';

/**
 * `committed`: this run's commit point; readers show the committed run with the greatest run id.
 * `superseded`: was committed, then a newer run of the slot committed and its files were removed.
 * `failed`: nothing of this run is visible. `dry_run`: counted only (never written by a dry run).
 */
export type SnapshotStatus = 'committed' | 'superseded' | 'failed' | 'dry_run';

export interface ManifestFile {
  readonly key: string;
  readonly bytes: number;
  readonly records: number;
}

export interface FailedUser {
  readonly user_id: string;
  readonly error: string;
  readonly error_type: string;
}

/** How many failed users a manifest lists by name; all of them are in the failed-users file. */
export const MANIFEST_FAILED_USERS_LIMIT = 1000;

export interface RunCounts {
  readonly users_scanned: number;
  readonly users_unusable: number;
  /** Users whose outcome is known: with or without sessions, not found, or failed. */
  readonly users_processed: number;
  readonly users_with_sessions: number;
  /** Users MoonKey answered 404 `user_not_found` for (deleted since the users table was read). */
  readonly users_not_found: number;
  readonly sessions_exported: number;
  readonly users_failed: number;
  readonly items_rejected: number;
  readonly requests: number;
  readonly retries: number;
}

export type MutableRunCounts = { -readonly [K in keyof RunCounts]: number };

export function emptyCounts(): MutableRunCounts {
  return {
    users_scanned: 0,
    users_unusable: 0,
    users_processed: 0,
    users_with_sessions: 0,
    users_not_found: 0,
    sessions_exported: 0,
    users_failed: 0,
    items_rejected: 0,
    requests: 0,
    retries: 0,
  };
}

/** Counts of many Work steps (segments, continuations) summed into the run's. */
export function sumCounts(parts: readonly RunCounts[]): RunCounts {
  const total = emptyCounts();
  // `?? 0`: a step stored by an older version lacks counts added since; a run that spans a deploy
  // must still sum to numbers, not NaN (which JSON writes as null and every tolerance lets pass).
  for (const part of parts)
    for (const name of Object.keys(total) as (keyof RunCounts)[]) total[name] += part[name] ?? 0;
  return total;
}

/**
 * What a run did, written last for success and failure alike; for a committed run, writing it
 * IS the commit. snake_case and one line so the manifests table reads it as it reads the sessions.
 */
export interface Manifest {
  readonly manifest_version: 2;
  readonly snapshot_id: string;
  /** This run of the slot; every line this run wrote carries the same `run_id`. */
  readonly run_id: string;
  readonly trigger: 'scheduled' | 'audit';
  readonly reason: string | null;
  readonly status: SnapshotStatus;
  /** `step` is the phase that failed (Plan, Work, Commit) when a state machine ran the run. */
  readonly error: { readonly type: string; readonly message: string; readonly step?: string } | null;
  readonly superseded_by?: string;
  readonly dt: string;
  readonly snapshot_at: number;
  readonly started_at: string;
  readonly finished_at: string;
  readonly duration_ms: number;
  readonly table_location: string;
  readonly counts: RunCounts;
  /** Keyed in snake_case (Hive struct fields cannot hold a hyphen); `failed_users` is the failed-users/ files. */
  readonly files: {
    readonly sessions: readonly ManifestFile[];
    readonly rejects: readonly ManifestFile[];
    readonly failed_users: readonly ManifestFile[];
    /** The pseudonymized copy's files (EXPORT_COPIES pseudonymized or both); committed with the raw ones. */
    readonly pseudonymized_sessions: readonly ManifestFile[];
    readonly pseudonymized_rejects: readonly ManifestFile[];
  };
  readonly failed_users: readonly FailedUser[];
  readonly failed_users_truncated: boolean;
  readonly settings: Record<string, unknown>;
  /** Which copies this run wrote, the policy of the pseudonymized one and its key's fingerprint. */
  readonly pii: ManifestPii;
}

/** The manifest's `pii`: enough for a reader to tell which snapshots' tokens are comparable. */
export interface ManifestPii {
  readonly copies: 'raw' | 'pseudonymized' | 'both';
  /** The per-field form of the policy (lambda/pii/pii-policy.ts); null in `raw` mode. */
  readonly policy: string | null;
  /** Snapshots with one fingerprint have comparable tokens; null in `raw` mode. */
  readonly key_fingerprint: string | null;
}

/** What a run is, as its manifest names it (the run's plan, seen from the snapshot layer). */
export interface ManifestRun {
  readonly snapshotId: string;
  readonly runId: string;
  readonly trigger: Manifest['trigger'];
  readonly reason: string | undefined;
  readonly snapshotAt: number;
  readonly startedAt: string;
}

export interface ManifestParts {
  readonly status: SnapshotStatus;
  readonly counts: RunCounts;
  /** Every failed user the run knows of; the manifest lists the first MANIFEST_FAILED_USERS_LIMIT. */
  readonly failedUsers: readonly FailedUser[];
  /** Files the run wrote; each goes under its kind by its key. */
  readonly files: readonly PendingFile[];
  readonly error?: Manifest['error'];
  /** The effective settings, as the plan recorded them, and the segments it chose. */
  readonly settings: Record<string, unknown>;
  readonly pii: ManifestPii;
}

/** The manifest of a run that ends now. */
export function buildManifest(
  run: ManifestRun,
  location: { readonly bucket: string; readonly keys: SnapshotKeys },
  parts: ManifestParts,
  finishedAt = Date.now(),
): Manifest {
  const { keys } = location;
  const describe = (kind: FileKind) =>
    parts.files
      .filter((f) => f.key.startsWith(keys.runFilePrefix(kind)))
      .map((f) => ({ key: f.key, bytes: f.bytes, records: f.records }));
  const failedUsers = parts.failedUsers.slice(0, MANIFEST_FAILED_USERS_LIMIT);
  return {
    manifest_version: 2,
    snapshot_id: run.snapshotId,
    run_id: run.runId,
    trigger: run.trigger,
    reason: run.reason ?? null,
    status: parts.status,
    error: parts.error ?? null,
    dt: keys.dt,
    snapshot_at: run.snapshotAt,
    started_at: run.startedAt,
    finished_at: new Date(finishedAt).toISOString(),
    duration_ms: finishedAt - Date.parse(run.startedAt),
    table_location: `s3://${location.bucket}/${keys.tableLocation()}`,
    counts: parts.counts,
    files: {
      sessions: describe('sessions'),
      rejects: describe('rejects'),
      failed_users: describe('failed-users'),
      pseudonymized_sessions: describe('pseudonymized/sessions'),
      pseudonymized_rejects: describe('pseudonymized/rejects'),
    },
    failed_users: failedUsers,
    failed_users_truncated: parts.counts.users_failed > failedUsers.length,
    settings: parts.settings,
    pii: parts.pii,
  };
}
