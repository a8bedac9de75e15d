/**
 * The state machine's control flow in a few lines, for tests that call the Lambda handler (or the
 * bundled artifact) as Step Functions would: Plan, a loop of Work per segment, Commit, and on any
 * failure Abort with the Catch's error shape. The real definition runs in the state-machine tests;
 * this only feeds the handler the payloads that definition sends.
 */
export type PhaseCall = (payload: Record<string, unknown>) => Promise<unknown>;

export interface DrivenRun {
  readonly plan:
    | { run: Record<string, unknown>; segments: { segment: number; totalSegments: number }[] }
    | undefined;
  readonly workCalls: number;
  readonly result: unknown;
  readonly failed: { step: string; error: Error } | undefined;
}

export async function drivePhases(
  call: PhaseCall,
  trigger: unknown,
  execution = { name: 'test-execution', startTime: new Date().toISOString() },
): Promise<DrivenRun> {
  let step = 'Plan';
  let plan: DrivenRun['plan'];
  let workCalls = 0;
  try {
    plan = (await call({ phase: 'plan', trigger, execution })) as NonNullable<DrivenRun['plan']>;
    step = 'Work';
    const run = plan.run;
    const tails = await Promise.all(
      plan.segments.map(async ({ segment, totalSegments }) => {
        let slice: Record<string, unknown> = { segment, totalSegments, cursor: null, step: 0, tail: null };
        for (;;) {
          workCalls++;
          const out = (await call({ phase: 'work', run, slice })) as {
            slice: Record<string, unknown>;
            done: boolean;
          };
          slice = out.slice;
          if (out.done) return slice.tail as string | null;
        }
      }),
    );
    step = 'Commit';
    const result = await call({ phase: 'commit', run, tails });
    return { plan, workCalls, result, failed: undefined };
  } catch (caught) {
    const error = caught as Error;
    const result = await call({
      phase: 'abort',
      ...(plan ? { run: plan.run } : {}),
      failedStep: step,
      error: {
        Error: error.name,
        Cause: JSON.stringify({ errorType: error.name, errorMessage: error.message }),
      },
    });
    return { plan, workCalls, result, failed: { step, error } };
  }
}
