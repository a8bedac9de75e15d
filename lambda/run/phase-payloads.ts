import { z } from 'zod';
import type { Manifest } from '../snapshot/manifest';

/**
 * What every phase after Plan receives: small, whatever the table size. The schema is what the
 * handler parses each phase's input with (handlers/phase-input.ts); the type is derived from it.
 */
export const runRefSchema = z.strictObject({
  snapshotId: z.string().min(1),
  runId: z.string().min(1),
  dt: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  planKey: z.string().min(1),
  dryRun: z.boolean(),
});
export type RunRef = Readonly<z.infer<typeof runRefSchema>>;

/** One segment's place: `cursor` is an encoded Work cursor (null before its first step). */
export const sliceSchema = z.strictObject({
  segment: z.number().int().nonnegative(),
  totalSegments: z.number().int().positive(),
  cursor: z.string().nullable(),
  step: z.number().int().nonnegative(),
  /** The segment's last Work step object; Commit walks the chain back from it. */
  tail: z.string().nullable(),
});
export type SliceState = Readonly<z.infer<typeof sliceSchema>>;

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
}
