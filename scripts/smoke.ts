/**
 * `npm run smoke -- [--stack-name NAME] [--region REGION] [--users N | --users ID,ID,...] [--timeout SECONDS]`
 *
 * The first-deploy check: finds the deployed stack by its outputs, audits a few users through
 * the export state machine and follows the execution, reads the committed manifest, and counts
 * the snapshot's sessions through the view `sessions` and the table `sessions_raw` in the stack's
 * Athena workgroup. One line per step, PASS or FAIL with what to fix; exit 1 on any failure.
 * The audit is a real one: its snapshot stays, with the reason "first-deploy check (npm run smoke)".
 */
import { parseArgs } from 'node:util';
import { AthenaClient } from '@aws-sdk/client-athena';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { STACK_NAME } from '../infra/stack-outputs';
import { auditPayloadFromArgs, runStackCommand, UsageError } from './audit-payload';
import { runSmoke, type SmokeClients, type SmokeOptions } from './smoke-run';
import type { UserChoice } from './smoke-steps';

const USAGE =
  'usage: npm run smoke -- [--stack-name NAME] [--region REGION] [--users N | --users ID,ID,...] [--timeout SECONDS]';
const DEFAULT_USERS = 3;
/** Room for a cold start of every phase and a few users; a queued run needs --timeout. */
const DEFAULT_TIMEOUT_SECONDS = 600;
/** An audit counts users one call each: a check of more than this is a run, not a smoke test. */
const MOST_COUNTED_USERS = 100;

/**
 * `--users` is a count when it is digits only, else a comma-separated list of ids (a list of one
 * all-digit id: `--users 123,`).
 */
export function parseUsers(value: string | undefined): UserChoice {
  if (value === undefined) return { kind: 'count', count: DEFAULT_USERS };
  if (/^\d+$/.test(value)) {
    const count = Number(value);
    if (count < 1 || count > MOST_COUNTED_USERS) {
      throw new UsageError(`--users ${value}: a count must be from 1 to ${MOST_COUNTED_USERS}\n${USAGE}`);
    }
    return { kind: 'count', count };
  }
  const ids = value
    .split(',')
    .map((id) => id.trim())
    .filter((id) => id !== '');
  try {
    // The handler's own rules for a user list, before anything is deployed-side.
    auditPayloadFromArgs({ reason: 'smoke', user: ids }, USAGE);
  } catch (error) {
    throw new UsageError((error as Error).message.replace(/--user\b/g, '--users'));
  }
  return { kind: 'ids', ids };
}

export function parseSmokeArgs(argv: readonly string[]): SmokeOptions {
  let values: { 'stack-name': string; region?: string; users?: string; timeout: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        'stack-name': { type: 'string', default: STACK_NAME },
        region: { type: 'string' },
        users: { type: 'string' },
        timeout: { type: 'string', default: String(DEFAULT_TIMEOUT_SECONDS) },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError(`${(error as Error).message}\n${USAGE}`);
  }
  const timeout = Number(values.timeout);
  if (!Number.isFinite(timeout) || timeout <= 0) {
    throw new UsageError(`--timeout ${values.timeout}: must be a number of seconds above 0\n${USAGE}`);
  }
  return {
    stackName: values['stack-name'],
    region: values.region,
    users: parseUsers(values.users),
    timeoutMs: timeout * 1000,
    executionPollMs: 5_000,
    queryPollMs: 1_000,
  };
}

function clientsFor(region: string | undefined): SmokeClients {
  const config = region ? { region } : {};
  return {
    cloudFormation: new CloudFormationClient(config),
    dynamodb: new DynamoDBClient(config),
    sfn: new SFNClient(config),
    s3: new S3Client(config),
    athena: new AthenaClient(config),
  };
}

async function main(): Promise<number> {
  const options = parseSmokeArgs(process.argv.slice(2));
  const clients = clientsFor(options.region);
  // The region the SDK resolved (flag, AWS_REGION or profile), for the messages.
  const region = options.region ?? (await clients.cloudFormation.config.region().catch(() => undefined));
  try {
    return await runSmoke(
      { ...options, region },
      clients,
      { now: () => Date.now(), sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)) },
      (line) => console.log(line),
    );
  } finally {
    for (const client of Object.values(clients)) client.destroy();
  }
}

if (require.main === module) runStackCommand('smoke', main);
