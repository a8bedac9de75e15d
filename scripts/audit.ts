/**
 * `npm run audit -- --reason TEXT [--user ID]... [--dry-run] [--stack NAME] [--function-name NAME]`
 *
 * Invokes the DEPLOYED export function with an audit payload and prints where the snapshot landed.
 * The function is found from the stack's `FunctionName` output: `--function-name` wins, else the
 * outputs file `npm run cdk -- deploy --outputs-file cdk-outputs.json` writes, else
 * `aws cloudformation describe-stacks` (the AWS CLI the README's other steps use).
 * The invocation is synchronous and never retried (a retry would be a second audit run).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { InvokeCommand, LambdaClient, TooManyRequestsException } from '@aws-sdk/client-lambda';
import { OUTPUTS } from '../infra/stack-outputs';
import type { RunSummary as HandlerResult } from '../lambda/handlers/handler';
import { AUDIT_OPTIONS, type AuditPayload, auditPayloadFromArgs, UsageError } from './audit-payload';

const USAGE =
  'usage: npm run audit -- --reason TEXT [--user ID]... [--dry-run] [--stack NAME] [--function-name NAME] [--outputs-file PATH]';

/** Where the deployed function is found; `npm run replay` takes the same flags. */
export interface DeployedStackArgs {
  readonly stack: string;
  readonly functionName: string | undefined;
  readonly outputsFile: string;
}

export const DEPLOYED_STACK_OPTIONS = {
  stack: { type: 'string', default: 'MoonKeySessionExport' },
  'function-name': { type: 'string' },
  'outputs-file': { type: 'string', default: 'cdk-outputs.json' },
} as const;

export function deployedStackArgs(values: {
  stack?: string;
  'function-name'?: string;
  'outputs-file'?: string;
}): DeployedStackArgs {
  return {
    stack: values.stack ?? 'MoonKeySessionExport',
    functionName: values['function-name'],
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

/**
 * Starts one run of the deployed job with `event` (an audit request, or a scheduled event that
 * `npm run replay` took from the failure queue), waits for it and prints where it landed; returns
 * the exit code. The one place the scripts start a deployed run.
 */
export async function startRun(target: DeployedStackArgs, event: unknown, what: string): Promise<number> {
  const outputs = target.functionName ? {} : stackOutputs(target.stack, target.outputsFile);
  const functionName = target.functionName ?? outputs[OUTPUTS.functionName];
  if (!functionName)
    throw new UsageError(`Stack ${target.stack} has no ${OUTPUTS.functionName} output: deployed?`);

  const lambda = new LambdaClient({ maxAttempts: 1, requestHandler: { requestTimeout: 16 * 60_000 } });
  console.error(`Invoking ${functionName} (${what}); this waits for the run to finish...`);
  try {
    const out = await lambda.send(
      new InvokeCommand({
        FunctionName: functionName,
        InvocationType: 'RequestResponse',
        Payload: Buffer.from(JSON.stringify(event)),
      }),
    );
    const body = out.Payload ? Buffer.from(out.Payload).toString('utf8') : '';
    if (out.FunctionError) {
      const error = JSON.parse(body || '{}') as { errorType?: string; errorMessage?: string };
      console.error(`The run failed: ${error.errorType ?? 'Error'}: ${error.errorMessage ?? body}`);
      console.error(
        'Its failed manifest (if it got that far) is under <prefix>/manifests/; see the function logs.',
      );
      return 1;
    }
    const result = JSON.parse(body) as HandlerResult;
    const bucket = outputs[OUTPUTS.bucketName];
    const where = (key: string) => (bucket ? `s3://${bucket}/${key}` : key);
    console.log(`snapshot ${result.snapshotId}: ${result.status}`);
    if (result.manifestKey) console.log(`manifest  ${where(result.manifestKey)}`);
    console.log(
      `sessions  ${result.counts.sessions_exported} from ${result.counts.users_processed} users in ${result.files} file(s)` +
        (result.counts.users_failed
          ? `, ${result.counts.users_failed} users FAILED (listed in the manifest)`
          : ''),
    );
    console.log(`athena    SELECT * FROM sessions WHERE snapshot_id = '${result.snapshotId}'`);
    return 0;
  } catch (error) {
    if (error instanceof TooManyRequestsException) {
      console.error(
        'Another run is in progress (the function runs one at a time): try again when it has finished.',
      );
      return 2;
    }
    throw error;
  } finally {
    lambda.destroy();
  }
}

async function main(): Promise<number> {
  const args = parseAuditArgs(process.argv.slice(2));
  return startRun(args, args.payload, `audit: "${args.payload.reason}"`);
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      console.error(
        error instanceof UsageError ? error.message : `audit failed: ${(error as Error).message}`,
      );
      process.exit(error instanceof UsageError ? 64 : 1);
    },
  );
}
