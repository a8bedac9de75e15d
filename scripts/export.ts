/**
 * `npm run export -- [--reason TEXT] [--user ID]... [--dry-run] [--scheduled-time ISO]`
 *
 * Runs the Lambda's own invocation path in this process, against whatever the environment
 * points at (the local stack, or real AWS with your credentials). Without --reason it is the
 * scheduled snapshot of the given slot (default: now), exactly the event EventBridge Scheduler
 * sends. Exit code 0 only when the snapshot committed (or a dry run finished).
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { closeRuntime, invoke } from '../lambda/handlers/handler';
import type { Progress } from '../lambda/run/run-export';
import { scheduledTimeProblem } from '../lambda/run/run-plan';
import { AUDIT_OPTIONS, auditPayloadFromArgs, UsageError } from './audit-payload';

const USAGE =
  'usage: npm run export -- [--reason TEXT] [--user ID]... [--dry-run] [--scheduled-time ISO]\n' +
  '  without --reason: the scheduled snapshot of --scheduled-time (default now)\n' +
  '  with --reason: an audit snapshot, of --user ids only when given';

export function eventFromArgs(argv: string[], now: Date): unknown {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...AUDIT_OPTIONS,
      'scheduled-time': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) throw new UsageError(USAGE);
  if (values.reason === undefined) {
    if (values.user || values['dry-run']) {
      throw new UsageError(`--user and --dry-run are for audits: add --reason "why"\n${USAGE}`);
    }
    const time = values['scheduled-time'] ?? now.toISOString();
    // The handler's own rule, checked here so every bad form is a usage error (exit 2).
    const problem = scheduledTimeProblem(time, now);
    if (problem !== undefined) throw new UsageError(`--scheduled-time ${problem}\n${USAGE}`);
    return { 'detail-type': 'Scheduled Event', source: 'moonkey.cli', time, detail: {} };
  }
  if (values['scheduled-time'] !== undefined)
    throw new UsageError('--scheduled-time is for scheduled runs, not audits');
  return auditPayloadFromArgs(values, USAGE);
}

function progressPrinter(): (p: Progress) => void {
  const tty = process.stderr.isTTY;
  return (p) => {
    const line = `${(p.elapsedMs / 1000).toFixed(0)}s  users ${p.usersDone}/${p.usersScanned}  ${p.usersPerSecond}/s  in flight ${p.inFlight}  sessions ${p.sessionsExported}  failed ${p.usersFailed}  retries ${p.retries}`;
    process.stderr.write(tty ? `\r\x1b[K${line}` : `${line}\n`);
  };
}

async function main(): Promise<number> {
  let event: unknown;
  try {
    event = eventFromArgs(process.argv.slice(2), new Date());
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  const outcome = await invoke(event, randomUUID(), {
    onProgress: progressPrinter(),
    // A terminal wants a live progress line and few JSON logs; the environment can still override.
    configDefaults: { LOG_LEVEL: 'WARN', EXPORT_PROGRESS_INTERVAL_MS: '1000', METRICS_ENABLED: 'false' },
  });
  if (process.stderr.isTTY) process.stderr.write('\n');
  const m = outcome.manifest;
  console.log(
    JSON.stringify(
      {
        status: m.status,
        snapshotId: m.snapshot_id,
        manifestKey: outcome.manifestKey,
        counts: m.counts,
        error: m.error,
        files: m.files.sessions.map((f) => f.key),
      },
      null,
      2,
    ),
  );
  return outcome.error ? 1 : 0;
}

if (require.main === module) {
  main()
    .catch((error: unknown) => {
      console.error(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
      return 1;
    })
    .then(async (code) => {
      await closeRuntime();
      process.exitCode = code;
    });
}
