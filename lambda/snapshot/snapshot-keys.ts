import { createHash } from 'node:crypto';
import { isRunId, partitionDate } from './snapshot-id';

/**
 * The kinds of file a run writes; `sessions` and `pseudonymized/sessions` are read by the Athena
 * tables. The pseudonymized copy lives under its own `pseudonymized/` prefix, so access to it is
 * granted apart from the raw copy's. Failed-users files hold no session data and serve both.
 */
export type FileKind =
  | 'sessions'
  | 'rejects'
  | 'failed-users'
  | 'pseudonymized/sessions'
  | 'pseudonymized/rejects';

export const FILE_KINDS: readonly FileKind[] = [
  'sessions',
  'rejects',
  'failed-users',
  'pseudonymized/sessions',
  'pseudonymized/rejects',
];

/** Where the pseudonymized copy's files live under the prefix. */
export const PSEUDONYMIZED_DIR = 'pseudonymized';

/**
 * Where everything of one run of one snapshot slot lives.
 *
 * Every object a run writes carries its run id, so two runs of a slot (a rerun, a retry, two
 * overlapping starts) never write the same key, and nothing a run does before its commit point
 * can touch what an earlier run committed:
 *
 *   <prefix>/<kind>/dt=<dt>/<snapshotId>.<runId>.<writer>-<index>.ndjson.gz   data (kind: sessions, ...)
 *   <prefix>/manifests/dt=<dt>/<snapshotId>.<runId>.json                      the commit point
 *   <prefix>/runs/dt=<dt>/<snapshotId>/<runId>/...                             run state, outside every table
 */
export class SnapshotKeys {
  readonly dt: string;

  constructor(
    readonly prefix: string,
    readonly snapshotId: string,
    snapshotAt: number,
    readonly runId: string,
  ) {
    this.dt = partitionDate(snapshotAt);
  }

  /** Every file of `kind` of this slot, whatever run wrote it. */
  slotFilePrefix(kind: FileKind): string {
    return `${this.prefix}/${kind}/dt=${this.dt}/${this.snapshotId}.`;
  }

  /** Every file of `kind` this run wrote. */
  runFilePrefix(kind: FileKind): string {
    return `${this.slotFilePrefix(kind)}${this.runId}.`;
  }

  /** `writer` tells apart writers that run at once or one after another (segments, steps, attempts). */
  fileKey(kind: FileKind, writer: string, index: number): string {
    return `${this.runFilePrefix(kind)}${writer}-${String(index).padStart(5, '0')}.ndjson.gz`;
  }

  tableLocation(): string {
    return `${this.prefix}/sessions/`;
  }

  pseudonymizedTableLocation(): string {
    return `${this.prefix}/${PSEUDONYMIZED_DIR}/sessions/`;
  }

  slotManifestPrefix(): string {
    return `${this.prefix}/manifests/dt=${this.dt}/${this.snapshotId}.`;
  }

  manifestKey(runId = this.runId): string {
    return `${this.slotManifestPrefix()}${runId}.json`;
  }

  slotStatePrefix(): string {
    return `${this.prefix}/runs/dt=${this.dt}/${this.snapshotId}/`;
  }

  runStatePrefix(runId = this.runId): string {
    return `${this.slotStatePrefix()}${runId}/`;
  }

  planKey(): string {
    return `${this.runStatePrefix()}plan.json`;
  }

  /** One object per multipart upload, written before its first part (see upload-registry.ts). */
  uploadRecordKey(fileKey: string, uploadId: string): string {
    const id = createHash('sha256').update(`${fileKey}\n${uploadId}`).digest('hex').slice(0, 32);
    return `${this.uploadRecordPrefix()}${id}.json`;
  }

  uploadRecordPrefix(runId = this.runId): string {
    return `${this.runStatePrefix(runId)}uploads/`;
  }

  /** A Work step's result; `attempt` makes a retried step's result a new object, never an overwrite. */
  workStepKey(segment: number, step: number, attempt: string): string {
    return `${this.workStatePrefix()}${String(segment).padStart(3, '0')}/${String(step).padStart(6, '0')}-${attempt}.json`;
  }

  /** What a failed Work step had done (its counts and failed users), for the failed manifest. */
  failedWorkKey(segment: number, step: number, attempt: string): string {
    return this.workStepKey(segment, step, attempt).replace(/\.json$/, '.failed.json');
  }

  workStatePrefix(): string {
    return `${this.runStatePrefix()}work/`;
  }
}

/**
 * The run id inside a data file, manifest or run-state key of a slot, or undefined for a key that
 * is not one of ours (it is then never deleted).
 */
export function runIdOfKey(key: string, slotPrefix: string): string | undefined {
  if (!key.startsWith(slotPrefix)) return undefined;
  const rest = key.slice(slotPrefix.length);
  const candidate = rest.split(/[./]/, 1)[0] ?? '';
  return isRunId(candidate) ? candidate : undefined;
}
