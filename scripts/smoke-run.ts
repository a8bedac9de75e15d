import type { AthenaClient } from '@aws-sdk/client-athena';
import type { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { OUTPUTS } from '../infra/stack-outputs';
import { checkAthenaCount, countSources } from './smoke-athena';
import { runAudit } from './smoke-audit';
import type { FixContext } from './smoke-fixes';
import { readManifest } from './smoke-manifest';
import { type Clock, chooseUsers, findStack, type Outcome, type UserChoice } from './smoke-steps';

export interface SmokeClients {
  readonly cloudFormation: CloudFormationClient;
  readonly dynamodb: DynamoDBClient;
  readonly sfn: SFNClient;
  readonly s3: S3Client;
  readonly athena: AthenaClient;
}

export interface SmokeOptions {
  readonly stackName: string;
  /** For messages only: the clients carry the region they call. */
  readonly region: string | undefined;
  readonly users: UserChoice;
  /** Longest wait for the audit execution, and for each Athena query. */
  readonly timeoutMs: number;
  readonly executionPollMs: number;
  readonly queryPollMs: number;
}

export const AUDIT_REASON = 'first-deploy check (npm run smoke)';

/**
 * Runs the checks in order and prints one line per step: `PASS <step>: …`, `FAIL <step>: … —
 * fix: …`, or `SKIP <step>: …` for a step whose input a failed step did not produce. Returns the
 * exit code: 0 when every step passed, 1 otherwise.
 */
export async function runSmoke(
  options: SmokeOptions,
  clients: SmokeClients,
  clock: Clock,
  print: (line: string) => void,
): Promise<number> {
  let failures = 0;
  let ctx: FixContext = { stackName: options.stackName, region: options.region };
  /** For each step that did not pass, the failed step at the root of it (itself when it failed). */
  const failedRoot = new Map<string, string>();
  /** Runs `step` when every step it needs passed; else reports it skipped, naming the failure behind it. */
  const step = async <T>(
    name: string,
    needs: readonly string[],
    run: () => Promise<Outcome<T>>,
  ): Promise<T | undefined> => {
    const blocked = needs.find((need) => failedRoot.has(need));
    if (blocked !== undefined) {
      const root = failedRoot.get(blocked) ?? blocked;
      failedRoot.set(name, root);
      print(
        `SKIP ${name}: skipped, it needs ${blocked}${root === blocked ? '' : `, which needs ${root}`}, which failed`,
      );
      return undefined;
    }
    let outcome: Outcome<T>;
    try {
      outcome = await run();
    } catch (error) {
      outcome = {
        ok: false,
        problem: `unexpected ${(error as Error).name}: ${(error as Error).message}`,
        fix: 'rerun; if it repeats, report it with this line',
      };
    }
    if (outcome.ok) {
      print(`PASS ${name}: ${outcome.summary}`);
      return outcome.value;
    }
    failures++;
    failedRoot.set(name, name);
    print(`FAIL ${name}: ${outcome.problem} — fix: ${outcome.fix}`);
    return undefined;
  };

  const stack = await step('stack', [], () => findStack(clients.cloudFormation, ctx));
  if (stack) {
    const out = stack.outputs;
    ctx = {
      ...ctx,
      secretArn: out[OUTPUTS.secretArn],
      functionName: out[OUTPUTS.functionName],
      bucket: out[OUTPUTS.bucketName],
      prefix: out[OUTPUTS.exportPrefix],
      database: out[OUTPUTS.glueDatabase],
      workGroup: out[OUTPUTS.athenaWorkGroup],
    };
  }
  const users = await step('users', ['stack'], () =>
    chooseUsers(clients.dynamodb, need(stack), options.users),
  );
  const run = await step('audit', ['stack', 'users'], () =>
    runAudit(
      clients.sfn,
      clock,
      need(stack),
      need(users),
      { timeoutMs: options.timeoutMs, pollMs: options.executionPollMs, reason: AUDIT_REASON },
      ctx,
    ),
  );
  const manifest = await step('manifest', ['stack', 'audit'], () =>
    readManifest(clients.s3, need(stack), need(run)),
  );
  const query = { timeoutMs: options.timeoutMs, pollMs: options.queryPollMs };
  // Before the manifest is read (or when it failed), the raw copy's steps stand for the checks skipped.
  for (const [name, source] of countSources(manifest?.pii.copies ?? 'raw')) {
    await step(name, ['stack', 'audit', 'manifest'], () =>
      checkAthenaCount(clients.athena, clock, need(stack), need(run), need(manifest), source, query, ctx),
    );
  }
  return failures === 0 ? 0 : 1;
}

/** A step's input: there whenever the step that makes it passed, which `step` has checked. */
function need<T>(value: T | undefined): T {
  if (value === undefined) throw new Error('a step ran without its input');
  return value;
}
