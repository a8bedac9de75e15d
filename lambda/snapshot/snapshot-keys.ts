import type { RunPlan } from '../run/run-plan';
import { partitionDate } from '../run/run-plan';

/** The kinds of file a run writes; only `sessions` is the Athena table location. */
export type FileKind = 'sessions' | 'rejects' | 'failed-users';

/**
 * Where everything of one snapshot lives. Data files are named after the snapshot so a rerun of
 * the same scheduled slot overwrites its own files (and deletes its own leftovers) and never
 * touches another snapshot of the same day.
 */
export class SnapshotKeys {
  readonly dt: string;

  constructor(
    readonly prefix: string,
    readonly plan: Pick<RunPlan, 'snapshotId' | 'snapshotAt'>,
  ) {
    this.dt = partitionDate(plan.snapshotAt);
  }

  /** Prefix under which every file of `kind` of this snapshot is found (for stale-file cleanup). */
  filePrefix(kind: FileKind): string {
    return `${this.prefix}/${kind}/dt=${this.dt}/${this.plan.snapshotId}-`;
  }

  /** `writer` tells apart writers that run at once (segments in separate invocations). */
  fileKey(kind: FileKind, writer: number, index: number): string {
    return `${this.filePrefix(kind)}${String(writer).padStart(3, '0')}-${String(index).padStart(5, '0')}.ndjson.gz`;
  }

  tableLocation(): string {
    return `${this.prefix}/sessions/`;
  }

  manifestKey(suffix = ''): string {
    return `${this.prefix}/manifests/dt=${this.dt}/${this.plan.snapshotId}${suffix}.json`;
  }
}
