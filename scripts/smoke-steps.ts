import {
  type CloudFormationClient,
  DescribeStacksCommand,
  type DescribeStacksCommandOutput,
} from '@aws-sdk/client-cloudformation';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { OUTPUTS } from '../infra/stack-outputs';
import { scanUsers } from '../lambda/run/scan-users';
import { awsCallFix, type FixContext } from './smoke-fixes';

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
    const position = { segment: 0, totalSegments: 1, cursor: undefined };
    const pageSize = Math.max(choice.count, 25);
    for await (const page of scanUsers(dynamodb, position, {
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
