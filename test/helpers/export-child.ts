/**
 * One export in a process of its own (`tsx test/helpers/export-child.ts`), configured only by its
 * environment like the CLI, so a test can SIGKILL it at a chosen moment (mid-commit, say) and see
 * what a real crash leaves behind. Prints the outcome as one JSON line.
 */
import { closeRuntime, invoke } from '../../lambda/handlers/handler';

async function main(): Promise<void> {
  const outcome = await invoke(JSON.parse(process.env.TEST_EVENT ?? '{}'), 'child');
  process.stdout.write(
    `${JSON.stringify({ status: outcome.manifest.status, runId: outcome.manifest.run_id, error: outcome.error?.name })}\n`,
  );
  await closeRuntime();
  process.exitCode = outcome.error ? 1 : 0;
}

void main();
