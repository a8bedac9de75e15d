import { z } from 'zod';
import { runRefSchema, sliceSchema } from '../run/phase-payloads';

/**
 * What the state machine sends each phase (infra/constructs/export-state-machine.ts builds these
 * payloads). Parsed at the boundary: a hand-edited execution input or a drifted definition is
 * refused with every problem named, before anything is read or written.
 */
export const phaseInputSchema = z.discriminatedUnion('phase', [
  z.strictObject({
    phase: z.literal('plan'),
    /** The execution's input: a scheduled event or an audit request. */
    trigger: z.unknown(),
    execution: z.strictObject({ name: z.string().min(1), startTime: z.iso.datetime({ offset: true }) }),
  }),
  z.strictObject({ phase: z.literal('work'), run: runRefSchema, slice: sliceSchema }),
  z.strictObject({
    phase: z.literal('commit'),
    run: runRefSchema,
    tails: z.array(z.string().nullable()).min(1),
  }),
  z.strictObject({
    phase: z.literal('abort'),
    run: runRefSchema.optional(),
    failedStep: z.string().min(1),
    /** Each segment's last Work step, when every segment finished (a failed Commit). */
    tails: z.array(z.string().nullable()).min(1).optional(),
    /** A Catch's error output: `Cause` holds Lambda's JSON error record, or plain text. */
    error: z.looseObject({ Error: z.string(), Cause: z.string().optional() }),
  }),
]);

export type PhaseInput = z.infer<typeof phaseInputSchema>;

/** `{ type, message }` of a Catch's error output (Lambda puts `errorType`/`errorMessage` in Cause). */
export function describeCaughtError(error: { Error: string; Cause?: string }): {
  type: string;
  message: string;
} {
  if (error.Cause !== undefined) {
    try {
      const cause = JSON.parse(error.Cause) as { errorType?: unknown; errorMessage?: unknown };
      if (typeof cause.errorMessage === 'string') {
        return {
          type: typeof cause.errorType === 'string' ? cause.errorType : error.Error,
          message: cause.errorMessage,
        };
      }
    } catch {
      // not JSON: a Step Functions error such as States.Timeout carries plain text
    }
  }
  return { type: error.Error, message: (error.Cause ?? error.Error).slice(0, 2000) };
}
