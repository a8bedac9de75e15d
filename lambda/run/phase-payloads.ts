import { z } from 'zod';

/**
 * The payloads the state machine carries from one phase to the next (and the handler parses at
 * its boundary, handlers/phase-input.ts). The TypeScript types are derived from these schemas, so
 * what a phase returns and what the next one accepts cannot drift apart.
 */
export const runRefSchema = z.strictObject({
  snapshotId: z.string().min(1),
  runId: z.string().min(1),
  dt: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  planKey: z.string().min(1),
  dryRun: z.boolean(),
});

export const sliceStateSchema = z.strictObject({
  segment: z.number().int().nonnegative(),
  totalSegments: z.number().int().positive(),
  /** Where the segment continues (an encoded Work cursor); null before its first step. */
  cursor: z.string().nullable(),
  step: z.number().int().nonnegative(),
  /** The segment's last Work step object; Commit walks the chain back from it. */
  tail: z.string().nullable(),
});

/** What every phase after Plan receives: small, whatever the table size. */
export type RunRef = Readonly<z.infer<typeof runRefSchema>>;

/** One segment's progress, handed from each Work to the next. */
export type SliceState = Readonly<z.infer<typeof sliceStateSchema>>;
