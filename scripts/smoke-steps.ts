import {
  type CloudFormationClient,
  DescribeStacksCommand,
  type DescribeStacksCommandOutput,
} from '@aws-sdk/client-cloudformation';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  type DescribeExecutionCommandOutput,
  GetExecutionHistoryCommand,
  type SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { z } from 'zod';
import { OUTPUTS } from '../infra/stack-outputs';
import { scanUsers } from '../lambda/run/scan-users';
import { getJson } from '../lambda/snapshot/s3-objects';
import { auditExecutionName } from '../local/execution-name';
import { type AuditPayload, auditPayloadFromArgs } from './audit-payload';
import { awsCallFix, executionFix, type FixContext } from './smoke-fixes';

/** What a step found: a value for the steps after it, or what went wrong and what to fix. */
export type Outcome<T> =
  | { readonly ok: true; readonly value: T; readonly summary: string }
  | { readonly ok: false; readonly problem: string; readonly fix: string };

export const pass = <T>(value: T, summary: string): Outcome<T> => ({ ok: true, value, summary });
export const fail = <T = never>(problem: string, fix: string): Outcome<T> => ({ ok: false, problem, fix });

/** Time, injected so a test follows a ten-minute execution without waiting for it. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export interface DeployedStack {
  readonly name: string;
  readonly status: string;
  readonly outputs: Readonly<Record<string, string>>;
}

/** Statuses in which the stack's resources are all in place (an update that rolled back left the old ones). */
const USABLE_STACK_STATUSES = new Set([
  'CREATE_COMPLETE',
  'UPDATE_COMPLETE',
  'UPDATE_ROLLBACK_COMPLETE',
  'IMPORT_COMPLETE',
  'IMPORT_ROLLBACK_COMPLETE',
]);
const NEEDED_OUTPUTS = [
  OUTPUTS.stateMachineArn,
  OUTPUTS.bucketName,
  OUTPUTS.exportPrefix,
  OUTPUTS.glueDatabase,
  OUTPUTS.athenaWorkGroup,
] as const;

/** Step 1: the stack, its status and the outputs every later step reads. */
export async function findStack(cfn: CloudFormationClient, ctx: FixContext): Promise<Outcome<DeployedStack>> {
  const where = ctx.region ? ` in ${ctx.region}` : '';
  let described: DescribeStacksCommandOutput;
  try {
    described = await cfn.send(new DescribeStacksCommand({ StackName: ctx.stackName }));
  } catch (error) {
    if (/does not exist/.test((error as Error).message ?? '')) {
      return fail(
        `no stack ${ctx.stackName}${where}`,
        'deploy it first (README "First deploy"), or pass --stack-name and --region of the deployed one',
      );
    }
    return fail(
      `DescribeStacks ${ctx.stackName}${where} failed: ${(error as Error).message}`,
      awsCallFix(error, 'cloudformation:DescribeStacks'),
    );
  }
  const stack = described.Stacks?.[0];
  const status = stack?.StackStatus ?? 'UNKNOWN';
  if (!USABLE_STACK_STATUSES.has(status)) {
    return fail(
      `stack ${ctx.stackName}${where} is ${status}`,
      status.endsWith('_IN_PROGRESS')
        ? 'wait for the deploy to finish, then rerun'
        : 'read its events (aws cloudformation describe-stack-events), fix the cause and deploy again',
    );
  }
  const outputs = Object.fromEntries(
    (stack?.Outputs ?? []).flatMap((o) =>
      o.OutputKey && o.OutputValue ? [[o.OutputKey, o.OutputValue]] : [],
    ),
  );
  const missing = NEEDED_OUTPUTS.filter((name) => !outputs[name]);
  if (missing.length > 0) {
    return fail(
      `stack ${ctx.stackName} has no output ${missing.join(', ')}`,
      'deploy this version of the project (its stack has every output the check reads)',
    );
  }
  return pass(
    { name: ctx.stackName, status, outputs },
    `${ctx.stackName}${where} is ${status}; state machine ${outputs[OUTPUTS.stateMachineArn]}`,
  );
}

/** Which users the audit exports: named ones, or the first `count` the users table yields. */
export type UserChoice =
  | { readonly kind: 'ids'; readonly ids: readonly string[] }
  | { readonly kind: 'count'; readonly count: number };

/** A scan of a table whose first pages hold no usable id stops here instead of reading all of it. */
const MOST_SCAN_PAGES = 20;

/** Step 2: the user ids to audit. */
export async function chooseUsers(
  dynamodb: DynamoDBClient,
  stack: DeployedStack,
  choice: UserChoice,
): Promise<Outcome<string[]>> {
  if (choice.kind === 'ids') return pass([...choice.ids], `${choice.ids.length} given with --users`);
  const table = stack.outputs[OUTPUTS.usersTableName];
  const attribute = stack.outputs[OUTPUTS.userIdAttribute];
  if (!table || !attribute) {
    return fail(
      `stack ${stack.name} has no ${OUTPUTS.usersTableName} / ${OUTPUTS.userIdAttribute} output to pick users from`,
      'deploy this version of the project, or name the users: --users <id>,<id>',
    );
  }
  const ids: string[] = [];
  const stop = new AbortController();
  let pages = 0;
  try {
    const slice = { segment: 0, totalSegments: 1, cursor: undefined };
    const pageSize = Math.max(choice.count, 25);
    for await (const page of scanUsers(dynamodb, slice, {
      tableName: table,
      idAttribute: attribute,
      pageSize,
      signal: stop.signal,
    })) {
      ids.push(...page.userIds.slice(0, choice.count - ids.length));
      if (ids.length >= choice.count || ++pages >= MOST_SCAN_PAGES) break;
    }
  } catch (error) {
    const cause = (error as Error).cause ?? error;
    return fail((error as Error).message, awsCallFix(cause, `dynamodb:Scan on ${table}`));
  } finally {
    // The scan reads one page ahead: nothing will read that page now.
    stop.abort();
  }
  if (ids.length === 0) {
    return fail(
      `table ${table} has no item with a string ${attribute}${pages >= MOST_SCAN_PAGES ? ` in its first ${MOST_SCAN_PAGES} pages` : ''}`,
      'put a few users in it, or name users the API knows: --users <id>,<id>',
    );
  }
  return pass(ids, `${ids.length} from table ${table}: ${ids.join(', ')}`);
}

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

/** What the later steps need of the committed manifest (lambda/snapshot/manifest.ts). */
const manifestSchema = z.object({
  snapshot_id: z.string(),
  run_id: z.string(),
  status: z.string(),
  dt: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  counts: z.object({
    users_processed: z.number(),
    users_with_sessions: z.number(),
    sessions_exported: z.number(),
    users_failed: z.number(),
  }),
  files: z.object({ sessions: z.array(z.object({ key: z.string(), records: z.number() })) }),
  failed_users: z.array(z.object({ user_id: z.string(), error: z.string(), error_type: z.string() })),
});
export type CommittedManifest = z.infer<typeof manifestSchema>;

/** Step 4: the run's manifest as S3 holds it: committed, this run's, no failed user, counts that add up. */
export async function readManifest(
  s3: S3Client,
  stack: DeployedStack,
  run: AuditRun,
): Promise<Outcome<CommittedManifest>> {
  const bucket = stack.outputs[OUTPUTS.bucketName] ?? '';
  const where = `s3://${bucket}/${run.manifestKey}`;
  let raw: unknown;
  try {
    raw = await getJson<unknown>(s3, bucket, run.manifestKey);
  } catch (error) {
    const cause = (error as Error).cause ?? error;
    return fail(
      `reading ${where} failed: ${(cause as Error).message}`,
      awsCallFix(cause, `s3:GetObject on ${where} (and kms:Decrypt on the bucket's key if it has one)`),
    );
  }
  if (raw === undefined) {
    return fail(
      `the run says it committed ${where}, but the bucket has no such object`,
      `check that ${OUTPUTS.bucketName} is the bucket the function writes (existingBucketName), and the function's logs`,
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    return fail(
      `${where} is not a manifest: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'deploy this version of the project (its job writes manifest_version 2)',
    );
  }
  const manifest = parsed.data;
  const { counts } = manifest;
  if (manifest.status !== 'committed') {
    return fail(`${where} says ${manifest.status}`, 'read its error field, and the execution history');
  }
  if (manifest.snapshot_id !== run.snapshotId || manifest.run_id !== run.runId) {
    return fail(
      `${where} names snapshot ${manifest.snapshot_id} run ${manifest.run_id}, the execution ${run.snapshotId} run ${run.runId}`,
      'deploy this version of the project: the manifest key and its content disagree',
    );
  }
  if (counts.users_failed > 0) {
    const first = manifest.failed_users[0];
    return fail(
      `${counts.users_failed} of ${counts.users_processed} users failed${first ? ` (${first.user_id}: ${first.error_type}: ${first.error})` : ''}`,
      `every audited user must export: see failed_users in ${where}; check the prop apiUrl and that the users exist in MoonKey`,
    );
  }
  const listed = manifest.files.sessions.reduce((sum, file) => sum + file.records, 0);
  if (listed !== counts.sessions_exported) {
    return fail(
      `${where} counts ${counts.sessions_exported} sessions but its files list ${listed} records`,
      "the manifest contradicts itself: keep it and the run's files, and read the function's logs of the run",
    );
  }
  const files = manifest.files.sessions.length;
  const none =
    counts.sessions_exported === 0
      ? '; no sessions, so the Athena counts below only show that the queries run: audit users with live sessions (--users <id>,<id>)'
      : '';
  return pass(
    manifest,
    `committed ${where}: ${counts.users_processed} users, ${counts.users_with_sessions} with sessions, ${counts.sessions_exported} sessions in ${files} file(s)${none}`,
  );
}
