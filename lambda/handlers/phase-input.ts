import { z } from 'zod';
import { runRefSchema as runRef, sliceStateSchema as slice } from '../run/phase-payloads';

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
  z.strictObject({ phase: z.literal('work'), run: runRef, slice }),
  z.strictObject({ phase: z.literal('commit'), run: runRef, tails: z.array(z.string().nullable()).min(1) }),
  z.strictObject({
    phase: z.literal('abort'),
    run: runRef.optional(),
    failedStep: z.string().min(1),
    /** A Catch's error output: `Cause` holds Lambda's JSON error record, or plain text. */
    error: z.looseObject({ Error: z.string(), Cause: z.string().optional() }),
  }),
]);

export type PhaseInput = z.infer<typeof phaseInputSchema>;
/** The input of one phase, as the handler has it after parsing. */
export type PhaseInputOf<P extends PhaseInput['phase']> = Extract<PhaseInput, { phase: P }>;

/** `{ type, message }` of a Catch's error output (Lambda puts `errorType`/`errorMessage` in Cause). */
export function describeCaughtError(error: PhaseInputOf<'abort'>['error']): {
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
