import type { Manifest } from '../snapshot/manifest';

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
