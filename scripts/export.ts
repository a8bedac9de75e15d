/**
 * `npm run export -- [--reason TEXT] [--user ID]... [--dry-run] [--scheduled-time ISO] [--work-budget-ms N]`
 *
 * Runs the deployed state machine's own definition in this process (local/state-machine-runner.ts),
 * every phase through the Lambda handler, against whatever the environment points at (the local
 * stack, or real AWS with your credentials). Without --reason it is the scheduled snapshot of the
 * given slot (default: now), exactly the event the scheduled-run launcher passes on. Each Work
 * invocation gets --work-budget-ms of remaining time (default: Lambda's 15 minutes). Exit code 0
 * only when the snapshot committed (or a dry run finished).
 */
import { parseArgs } from 'node:util';
import { FUNCTION_TIMEOUT_MS } from '../lambda/core/facts';
import { closeRuntime } from '../lambda/handlers/handler';
import { scheduledTimeProblem } from '../lambda/run/run-plan';
import { runExportLocally } from '../local/local-export';
import type { PhaseCall } from '../local/state-machine-runner';
import { AUDIT_OPTIONS, auditPayloadFromArgs, UsageError } from './audit-payload';

const USAGE =
  'usage: npm run export -- [--reason TEXT] [--user ID]... [--dry-run] [--scheduled-time ISO] [--work-budget-ms N]\n' +
  '  without --reason: the scheduled snapshot of --scheduled-time (default now)\n' +
  '  with --reason: an audit snapshot, of --user ids only when given';

export function eventFromArgs(argv: string[], now: Date): unknown {
  return argsFrom(argv, now).event;
}

/** The execution input and the Work budget the flags ask for. */
export function argsFrom(argv: string[], now: Date): { event: unknown; workBudgetMs: number } {
  const { values } = parseArgs({
    args: argv,
    options: {
      ...AUDIT_OPTIONS,
      'scheduled-time': { type: 'string' },
      'work-budget-ms': { type: 'string', default: String(FUNCTION_TIMEOUT_MS) },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) throw new UsageError(USAGE);
  const workBudgetMs = Number(values['work-budget-ms']);
  if (!Number.isInteger(workBudgetMs) || workBudgetMs < 1 || workBudgetMs > FUNCTION_TIMEOUT_MS) {
    throw new UsageError(
      `--work-budget-ms must be a whole number of milliseconds from 1 to ${FUNCTION_TIMEOUT_MS}\n${USAGE}`,
    );
  }
  return { event: eventOf(values, now), workBudgetMs };
}

function eventOf(
  values: { reason?: string; user?: string[]; 'dry-run'?: boolean; 'scheduled-time'?: string },
  now: Date,
): unknown {
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

/** One line per phase invocation: which segment, which continuation, and what it returned. */
function phasePrinter(): (call: PhaseCall & { result?: unknown; error?: string }) => void {
  const started = Date.now();
  return (call) => {
    const at = `${((Date.now() - started) / 1000).toFixed(1)}s`;
    const slice = (call.payload as { slice?: { segment: number; step: number } }).slice;
    const where = slice ? ` segment ${slice.segment} step ${slice.step + 1}` : '';
    const outcome = call.error
      ? ` FAILED: ${call.error}`
      : (call.result as { done?: boolean } | undefined)?.done === false
        ? ' (continues)'
        : '';
    process.stderr.write(`${at.padStart(7)}  ${call.state} #${call.count}${where}${outcome}\n`);
  };
}

async function main(): Promise<number> {
  let event: unknown;
  let workBudgetMs: number;
  try {
    ({ event, workBudgetMs } = argsFrom(process.argv.slice(2), new Date()));
  } catch (error) {
    console.error((error as Error).message);
    return 2;
  }
  // A terminal wants the phase lines and few JSON logs; the environment can still override.
  process.env.LOG_LEVEL ??= 'WARN';
  process.env.METRICS_ENABLED ??= 'false';
  const execution = await runExportLocally(event, new Date(), { workBudgetMs, onPhase: phasePrinter() });
  console.log(
    JSON.stringify(
      execution.status === 'SUCCEEDED'
        ? {
            status: execution.status,
            execution: execution.name,
            result: execution.output,
            invocations: execution.calls,
          }
        : {
            status: execution.status,
            execution: execution.name,
            error: execution.error,
            invocations: execution.calls,
          },
      null,
      2,
    ),
  );
  return execution.status === 'SUCCEEDED' ? 0 : 1;
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
