/**
 * `npm run replay -- <message.json | JSON | -> [--print] [--stack NAME] [--state-machine-arn ARN] [--outputs-file PATH]`
 *
 * Runs again the event in one failure-queue message: a Scheduler dead letter (the event itself) or
 * Lambda's on-failure invocation record (the event under `requestPayload`), given as a file, as
 * JSON text, or on stdin (`-`); `aws sqs receive-message` output holding one message works too.
 * Prints the event and why it failed, then starts a run with it the way `npm run audit` does.
 * `--print` stops after printing. A replayed scheduled event reruns its own slot (same snapshot id).
 */
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { DEPLOYED_STACK_OPTIONS, type DeployedStackArgs, deployedStackArgs, startRun } from './audit';
import { UsageError } from './audit-payload';
import { ReplayMessageError, replayFromText } from './replay-message';

const USAGE =
  'usage: npm run replay -- <message.json | JSON | -> [--print] [--stack NAME] [--state-machine-arn ARN] [--outputs-file PATH]';

export interface ReplayArgs extends DeployedStackArgs {
  /** A file path, `-` for stdin, or the JSON itself. */
  readonly source: string;
  /** Print the event and why it failed; start nothing. */
  readonly print: boolean;
}

export function parseReplayArgs(argv: string[]): ReplayArgs {
  const { values, positionals } = parseArgs({
    args: argv,
    options: { ...DEPLOYED_STACK_OPTIONS, print: { type: 'boolean', default: false } },
    allowPositionals: true,
    strict: true,
  });
  const [source, ...extra] = positionals;
  if (source === undefined || extra.length > 0) throw new UsageError(`give one message\n${USAGE}`);
  return { source, print: values.print ?? false, ...deployedStackArgs(values) };
}

/** The message text: stdin for `-`, the argument itself if it starts like JSON, else a file. */
export function readMessage(source: string, stdin: () => string = () => readFileSync(0, 'utf8')): string {
  if (source === '-') return stdin();
  if (/^\s*[[{]/.test(source)) return source;
  if (!existsSync(source)) throw new UsageError(`no such file: ${source}\n${USAGE}`);
  return readFileSync(source, 'utf8');
}

async function main(): Promise<number> {
  const args = parseReplayArgs(process.argv.slice(2));
  const replay = replayFromText(readMessage(args.source));
  console.error(
    replay.from === 'invocation-record'
      ? "Lambda's invocation record: replaying its requestPayload."
      : 'The message is the event itself.',
  );
  if (replay.failure) console.error(`It failed before: ${replay.failure}`);
  console.log(JSON.stringify(replay.event, null, 2));
  if (args.print) return 0;
  return startRun(args, replay.event, 'replay of a failure-queue message');
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (error: unknown) => {
      const badFlag = (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS') === true;
      const refused = badFlag || error instanceof UsageError || error instanceof ReplayMessageError;
      console.error(refused ? (error as Error).message : `replay failed: ${(error as Error).message}`);
      process.exit(refused ? 2 : 1);
    },
  );
}
