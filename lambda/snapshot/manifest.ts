export type SnapshotStatus = 'committed' | 'failed' | 'dry_run';

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

/**
 * What a run did, written last for success and failure alike. snake_case and one line so the
 * manifests table reads it as it reads the sessions (and so `jq` users feel at home).
 */
export interface Manifest {
  readonly manifest_version: 1;
  readonly snapshot_id: string;
  readonly trigger: 'scheduled' | 'audit';
  readonly reason: string | null;
  readonly status: SnapshotStatus;
  readonly error: { readonly type: string; readonly message: string } | null;
  readonly dt: string;
  readonly snapshot_at: number;
  readonly started_at: string;
  readonly finished_at: string;
  readonly duration_ms: number;
  readonly table_location: string;
  readonly counts: {
    readonly users_scanned: number;
    readonly users_unusable: number;
    readonly users_processed: number;
    readonly users_with_sessions: number;
    readonly sessions_exported: number;
    readonly users_failed: number;
    readonly items_rejected: number;
    readonly requests: number;
    readonly retries: number;
  };
  /** Keyed in snake_case (Hive struct fields cannot hold a hyphen); `failed_users` is the failed-users/ files. */
  readonly files: {
    readonly sessions: readonly ManifestFile[];
    readonly rejects: readonly ManifestFile[];
    readonly failed_users: readonly ManifestFile[];
  };
  readonly failed_users: readonly FailedUser[];
  readonly failed_users_truncated: boolean;
  readonly settings: Record<string, unknown>;
}
