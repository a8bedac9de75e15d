import { createHash } from 'node:crypto';
import {
  dataFileName,
  type FileKind,
  folderPrefix,
  MANIFEST_SUFFIX,
  MANIFESTS_FOLDER,
  partitionFolder,
  RUN_STATE_FOLDER,
  workStepName,
} from '../core/facts';
import { isRunId, partitionDate } from './snapshot-id';

export { FILE_KINDS, type FileKind } from '../core/facts';

/**
 * Where everything of one run of one snapshot slot lives.
 *
 * The folder names, the partition folder and the number widths are shared facts (core/facts.ts):
 * the Glue tables and the local reader read the same layout.
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
    return `${folderPrefix(this.prefix, kind)}${partitionFolder(this.dt)}${this.snapshotId}.`;
  }

  /** Every file of `kind` this run wrote. */
  runFilePrefix(kind: FileKind): string {
    return `${this.slotFilePrefix(kind)}${this.runId}.`;
  }

  /** `writer` tells apart writers that run at once or one after another (segments, steps, invocations). */
  fileKey(kind: FileKind, writer: string, index: number): string {
    return `${this.runFilePrefix(kind)}${dataFileName(writer, index)}`;
  }

  tableLocation(): string {
    return folderPrefix(this.prefix, 'sessions');
  }

  pseudonymizedTableLocation(): string {
    return folderPrefix(this.prefix, 'pseudonymized/sessions');
  }

  slotManifestPrefix(): string {
    return `${folderPrefix(this.prefix, MANIFESTS_FOLDER)}${partitionFolder(this.dt)}${this.snapshotId}.`;
  }

  manifestKey(runId = this.runId): string {
    return `${this.slotManifestPrefix()}${runId}${MANIFEST_SUFFIX}`;
  }

  slotStatePrefix(): string {
    return `${folderPrefix(this.prefix, RUN_STATE_FOLDER)}${partitionFolder(this.dt)}${this.snapshotId}/`;
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

  /** A Work step's result; `invocation` makes a retried step's result a new object, never an overwrite. */
  workStepKey(segment: number, step: number, invocation: string): string {
    return `${this.workStatePrefix()}${workStepName(segment, step, invocation)}`;
  }

  /** What a failed Work step had done (its counts and failed users), for the failed manifest. */
  failedWorkKey(segment: number, step: number, invocation: string): string {
    return this.workStepKey(segment, step, invocation).replace(/\.json$/, '.failed.json');
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
