import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { OUTPUTS } from '../infra/stack-outputs';
import { auditExecutionName } from '../local/execution-name';
import { type AuditPayload, auditPayloadFromArgs } from './audit-payload';
import { awsCallFix, executionFix, type FixContext } from './smoke-fixes';
import { type Clock, type DeployedStack, fail, type Outcome, pass } from './smoke-steps';

export interface AuditRun {
  readonly executionArn: string;
  readonly snapshotId: string;
  readonly runId: string;
  readonly manifestKey: string;
}

/** The output of the export state machine: the Commit phase's summary (lambda/handlers/handler.ts). */
const commitSummarySchema = z.object({
  snapshotId: z.string().min(1),
  runId: z.string().min(1),
  status: z.string(),
  manifestKey: z.string().nullable(),
});

export interface AuditOptions {
  readonly timeoutMs: number;
  readonly pollMs: number;
  readonly reason: string;
}

/** Step 3: an audit of `userIds` through the state machine, followed to its end or the timeout. */
export async function runAudit(
  sfn: SFNClient,
  clock: Clock,
  stack: DeployedStack,
  userIds: readonly string[],
  options: AuditOptions,
  ctx: FixContext,
): Promise<Outcome<AuditRun>> {
  const stateMachineArn = stack.outputs[OUTPUTS.stateMachineArn] ?? '';
  // The payload `npm run audit` sends, checked by the handler's own schema before anything starts.
  let payload: AuditPayload;
  try {
    payload = auditPayloadFromArgs({ reason: options.reason, user: [...userIds] }, '');
  } catch (error) {
    return fail(
      `the audit request is refused: ${(error as Error).message.trim()}`,
      'name other users: --users <id>,<id>',
    );
  }
  const name = auditExecutionName(new Date(clock.now()));
  let executionArn: string;
  try {
    const started = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(payload) }),
    );
    executionArn = started.executionArn ?? '';
  } catch (error) {
    return fail(
      `StartExecution on ${stateMachineArn} failed: ${(error as Error).message}`,
      awsCallFix(error, `states:StartExecution on ${stateMachineArn}`),
    );
  }
  const startedAt = clock.now();
  const deadline = startedAt + options.timeoutMs;
  let execution: DescribeExecutionCommandOutput;
  for (;;) {
    try {
      execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
    } catch (error) {
      return fail(
        `DescribeExecution ${executionArn} failed: ${(error as Error).message}`,
        awsCallFix(error, 'states:DescribeExecution'),
      );
    }
    if (execution.status !== 'RUNNING') break;
    const left = deadline - clock.now();
    if (left <= 0) return stillRunning(sfn, executionArn, options.timeoutMs);
    await clock.sleep(Math.min(options.pollMs, left));
  }
  const seconds = Math.round((clock.now() - startedAt) / 1000);
  const status = execution.status ?? 'UNKNOWN';
  if (status !== 'SUCCEEDED') {
    const message = errorMessageOf(execution.cause);
    return fail(
      `execution ${name} ${status} after ${seconds} s: ${execution.error ?? 'no error'}${message ? `: ${message}` : ''}`,
      executionFix(status, execution.error, message, executionArn, ctx),
    );
  }
  const summary = parseJson(commitSummarySchema, execution.output);
  if (!summary) {
    return fail(
      `execution ${name} SUCCEEDED but its output is not a commit summary: ${String(execution.output).slice(0, 200)}`,
      'deploy this version of the project (the state machine ends with the Commit phase)',
    );
  }
  if (summary.status !== 'committed' || !summary.manifestKey) {
    return fail(
      `execution ${name} SUCCEEDED with snapshot status ${summary.status}`,
      `an audit commits its snapshot; read the execution's output and history (${executionArn})`,
    );
  }
  const { snapshotId, runId, manifestKey } = summary;
  return pass(
    { executionArn, snapshotId, runId, manifestKey },
    `execution ${name} SUCCEEDED in ${seconds} s: snapshot ${snapshotId}, run ${runId}`,
  );
}

/** The FAIL of an execution still running at the timeout, with the state it waits in. */
async function stillRunning(
  sfn: SFNClient,
  executionArn: string,
  timeoutMs: number,
): Promise<Outcome<AuditRun>> {
  let state: string | undefined;
  try {
    const history = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 50 }),
    );
    state = history?.events?.find((e) => e.stateEnteredEventDetails?.name)?.stateEnteredEventDetails?.name;
  } catch {
    // The state only sharpens the advice; the FAIL stands without it.
  }
  const queued = state === 'WaitForTurn' || state === 'ListRunningExecutions';
  return fail(
    `execution ${executionArn} still RUNNING after ${Math.round(timeoutMs / 1000)} s${state ? ` (in ${state})` : ''}`,
    queued
      ? 'an earlier run holds the queue (runs go one at a time): let it finish or stop it, then rerun'
      : `it keeps running: follow it in the Step Functions console, or rerun with a larger --timeout (stop it with aws stepfunctions stop-execution --execution-arn ${executionArn})`,
  );
}

/** The job's message inside a Lambda error cause (`{"errorType","errorMessage","trace"}`), without its trace. */
function errorMessageOf(cause: string | undefined): string | undefined {
  if (!cause) return undefined;
  const parsed = parseJson(z.object({ errorMessage: z.string() }), cause);
  return (parsed?.errorMessage ?? cause).slice(0, 500);
}

function parseJson<T>(schema: z.ZodType<T>, text: string | undefined): T | undefined {
  try {
    const parsed = schema.safeParse(JSON.parse(text ?? ''));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
