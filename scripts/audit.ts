/**
 * `npm run audit -- --reason TEXT [--user ID]... [--dry-run] [--stack NAME] [--state-machine-arn ARN]`
 *
 * Starts an execution of the DEPLOYED export state machine with an audit request, follows it
 * (DescribeExecution and GetExecutionHistory, every few seconds) with a progress line, and prints
 * where the snapshot landed. The state machine is found from the stack's `StateMachineArn`
 * output: `--state-machine-arn` wins, else the outputs file `npm run cdk -- deploy --outputs-file
 * cdk-outputs.json` writes, else `aws cloudformation describe-stacks` (the AWS CLI the README's
 * other steps use). The execution is named `audit-<UTC time>-<random>`; if a run is in
 * progress, the audit queues behind it (the state machine runs one at a time) and says so.
 * `npm run replay` starts its runs through `startRun` here too.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import {
  DescribeExecutionCommand,
  ExecutionAlreadyExists,
  GetExecutionHistoryCommand,
  type HistoryEvent,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { OUTPUTS, STACK_NAME } from '../infra/stack-outputs';
import { auditExecutionName, scheduledExecutionName } from '../local/execution-name';
import {
  AUDIT_OPTIONS,
  type AuditPayload,
  auditPayloadFromArgs,
  runStackCommand,
  UsageError,
} from './audit-payload';

const USAGE =
  'usage: npm run audit -- --reason TEXT [--user ID]... [--dry-run] [--stack NAME] [--state-machine-arn ARN] [--outputs-file PATH]';
const POLL_MS = 5_000;

/** Where the deployed state machine is found; `npm run replay` takes the same flags. */
export interface DeployedStackArgs {
  readonly stack: string;
  readonly stateMachineArn: string | undefined;
  readonly outputsFile: string;
}

export const DEPLOYED_STACK_OPTIONS = {
  stack: { type: 'string', default: STACK_NAME },
  'state-machine-arn': { type: 'string' },
  'outputs-file': { type: 'string', default: 'cdk-outputs.json' },
} as const;

export function deployedStackArgs(values: {
  stack?: string;
  'state-machine-arn'?: string;
  'outputs-file'?: string;
}): DeployedStackArgs {
  return {
    stack: values.stack ?? STACK_NAME,
    stateMachineArn: values['state-machine-arn'],
    outputsFile: values['outputs-file'] ?? 'cdk-outputs.json',
  };
}

export interface AuditArgs extends DeployedStackArgs {
  readonly payload: AuditPayload;
}

export function parseAuditArgs(argv: string[]): AuditArgs {
  const { values } = parseArgs({
    args: argv,
    options: { ...AUDIT_OPTIONS, ...DEPLOYED_STACK_OPTIONS },
    strict: true,
  });
  return { payload: auditPayloadFromArgs(values, USAGE), ...deployedStackArgs(values) };
}

/** Where a run is, read from its execution history. */
export interface RunProgress {
  /** The state entered last (Plan, Work, Commit, Abort, WaitForTurn, ...). */
  readonly state: string | undefined;
  /** Work invocations started so far (one per continuation of a segment, retries included). */
  readonly workInvocations: number;
  /** Whether the run has started planning (it queues behind earlier runs until then). */
  readonly planned: boolean;
  /** Times the run found an earlier one still running. */
  readonly waits: number;
}

export function progressFromHistory(events: readonly HistoryEvent[]): RunProgress {
  let state: string | undefined;
  let workInvocations = 0;
  let planned = false;
  let waits = 0;
  for (const event of events) {
    const name = event.stateEnteredEventDetails?.name;
    if (!name || !event.type?.endsWith('StateEntered')) continue;
    state = name;
    if (name === 'Work') workInvocations += 1;
    if (name === 'Plan') planned = true;
    if (name === 'WaitForTurn') waits += 1;
  }
  return { state, workInvocations, planned, waits };
}

export function progressLine(p: RunProgress, elapsedMs: number): string {
  const seconds = `${(elapsedMs / 1000).toFixed(0)}s`;
  if (!p.planned) {
    return p.waits > 0
      ? `${seconds}  queued behind an earlier run (checked ${p.waits} time(s))`
      : `${seconds}  starting`;
  }
  return `${seconds}  ${p.state ?? '-'}  work invocations ${p.workInvocations}`;
}

/** The stack's outputs, from the CDK outputs file or from CloudFormation through the AWS CLI. */
export function stackOutputs(stack: string, outputsFile: string): Record<string, string> {
  if (existsSync(outputsFile)) {
    const all = JSON.parse(readFileSync(outputsFile, 'utf8')) as Record<string, Record<string, string>>;
    if (all[stack]) return all[stack];
  }
  const text = execFileSync(
    'aws',
    [
      'cloudformation',
      'describe-stacks',
      '--stack-name',
      stack,
      '--query',
      'Stacks[0].Outputs',
      '--output',
      'json',
    ],
    { encoding: 'utf8' },
  );
  const outputs = JSON.parse(text) as { OutputKey: string; OutputValue: string }[] | null;
  return Object.fromEntries((outputs ?? []).map((o) => [o.OutputKey, o.OutputValue]));
}

interface CommitResult {
  snapshotId?: string;
  runId?: string;
  status?: string;
  manifestKey?: string | null;
  counts?: Record<string, number>;
}

/**
 * The events after `lastSeenId`, oldest first: read newest first and stop at the first event
 * already seen, so each poll costs one call however long the history has grown.
 */
async function newEvents(
  sfn: SFNClient,
  executionArn: string | undefined,
  lastSeenId: number,
): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 200, nextToken }),
    );
    for (const event of page.events ?? []) {
      if ((event.id ?? 0) <= lastSeenId) return fresh.reverse();
      fresh.push(event);
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return fresh.reverse();
}

/**
 * Names for a run of `event`: a scheduled event is its slot's run (`scheduled-<slot>`, the name
 * the launcher uses, then `-rerun-1`, `-rerun-2`, ... if the slot already ran: the job takes the
 * snapshot id from the event, so a rerun replaces the slot's snapshot); anything else an audit.
 */
export function* executionNames(event: unknown, now: Date): Generator<string> {
  const time = (event as { 'detail-type'?: unknown; time?: unknown } | null)?.time;
  if (
    (event as { 'detail-type'?: unknown } | null)?.['detail-type'] === 'Scheduled Event' &&
    typeof time === 'string'
  ) {
    const slot = scheduledExecutionName(time);
    yield slot;
    for (let rerun = 1; rerun <= 50; rerun++) yield `${slot}-rerun-${rerun}`;
    return;
  }
  yield auditExecutionName(now);
}

/**
 * Starts one run of the deployed state machine with `event` (an audit request, or a scheduled
 * event that `npm run replay` took from the failure queue), follows it and prints where it
 * landed; returns the exit code. The one place the scripts start a deployed run.
 */
export async function startRun(target: DeployedStackArgs, event: unknown, what: string): Promise<number> {
  const outputs = target.stateMachineArn ? {} : stackOutputs(target.stack, target.outputsFile);
  const stateMachineArn = target.stateMachineArn ?? outputs[OUTPUTS.stateMachineArn];
  if (!stateMachineArn)
    throw new UsageError(`Stack ${target.stack} has no ${OUTPUTS.stateMachineArn} output: deployed?`);

  const sfn = new SFNClient({});
  try {
    let executionArn: string | undefined;
    let name = '';
    for (name of executionNames(event, new Date())) {
      try {
        ({ executionArn } = await sfn.send(
          new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(event) }),
        ));
        break;
      } catch (error) {
        if (!(error instanceof ExecutionAlreadyExists)) throw error;
      }
    }
    if (!executionArn) throw new Error(`every execution name tried for this run is taken (last: ${name})`);
    console.error(`Started ${name} (${what})\n  ${executionArn}`);
    const started = Date.now();
    const events: HistoryEvent[] = [];
    const tty = process.stderr.isTTY;
    for (;;) {
      const execution = await sfn.send(new DescribeExecutionCommand({ executionArn }));
      events.push(...(await newEvents(sfn, executionArn, events.at(-1)?.id ?? 0)));
      const line = progressLine(progressFromHistory(events), Date.now() - started);
      process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
      if (execution.status !== 'RUNNING') {
        if (tty) process.stderr.write('\n');
        return report(execution.status, execution.output, execution.error, execution.cause, outputs);
      }
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  } finally {
    sfn.destroy();
  }
}

function report(
  status: string | undefined,
  output: string | undefined,
  error: string | undefined,
  cause: string | undefined,
  outputs: Record<string, string>,
): number {
  if (status !== 'SUCCEEDED') {
    console.error(`The run ended ${status}: ${error ?? 'no error'}${cause ? `: ${cause}` : ''}`);
    console.error(
      'Its failed manifest is under <prefix>/manifests/ (status "failed"); the execution history shows the failed step.',
    );
    return 1;
  }
  const result = JSON.parse(output ?? '{}') as CommitResult;
  const bucket = outputs[OUTPUTS.bucketName];
  const where = (key: string) => (bucket ? `s3://${bucket}/${key}` : key);
  console.log(`snapshot ${result.snapshotId} (run ${result.runId}): ${result.status}`);
  if (result.manifestKey) console.log(`manifest  ${where(result.manifestKey)}`);
  if (result.counts) console.log(`counts    ${JSON.stringify(result.counts)}`);
  console.log(`athena    SELECT * FROM sessions WHERE snapshot_id = '${result.snapshotId}'`);
  return 0;
}

async function main(): Promise<number> {
  const args = parseAuditArgs(process.argv.slice(2));
  return startRun(args, args.payload, `audit: "${args.payload.reason}"`);
}

if (require.main === module) runStackCommand('audit', main);
