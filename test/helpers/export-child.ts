/**
 * One export in a process of its own (`tsx test/helpers/export-child.ts`), configured only by its
 * environment like the CLI, and run like the CLI: the synthesized state machine on the local
 * runner, every phase through the Lambda handler. A test can SIGKILL it at a chosen moment
 * (mid-commit, say) and see what a real crash leaves behind. Prints how the execution ended as
 * one JSON line.
 */
import { closeRuntime } from '../../lambda/handlers/handler';
import { runExportLocally } from '../../local/local-export';

async function main(): Promise<void> {
  const execution = await runExportLocally(JSON.parse(process.env.TEST_EVENT ?? '{}'), new Date(), {
    workBudgetMs: 900_000,
  });
  process.stdout.write(
    `${JSON.stringify({ status: execution.status, output: execution.output, error: execution.error?.Error })}\n`,
  );
  await closeRuntime();
  process.exitCode = execution.status === 'SUCCEEDED' ? 0 : 1;
}

void main();
