import { handler } from '../lambda/handlers/handler';
import { auditExecutionName, scheduledExecutionName } from './execution-name';
import { loadStateMachineDefinitions } from './state-machine-definitions';
import {
  type LocalExecution,
  type LocalExecutionOptions,
  LocalStepFunctions,
  type PhaseHandler,
} from './state-machine-runner';

/**
 * One export run the way the deployed stack does it: the state machine's own definition
 * (synthesized from infra/), every phase through the Lambda handler, in this process. The
 * execution is named as in AWS: `scheduled-<slot>` for a scheduled event, `audit-<now>-<random>`
 * for an audit request. `npm run export`, `npm start`, the benchmarks and the tests all run through
 * here; a test may pass a handler built by `createPhaseHandler` over a runtime of its own, and
 * a name of its own (a deliberate rerun's `-rerun-<n>`, say).
 */
export async function runExportLocally(
  event: unknown,
  now: Date,
  options: LocalExecutionOptions & { readonly handler?: PhaseHandler; readonly name?: string } = {},
): Promise<LocalExecution> {
  const definitions = await loadStateMachineDefinitions();
  const sfn = new LocalStepFunctions(definitions, options.handler ?? handler, options);
  const name =
    options.name ??
    (typeof event === 'object' && event !== null && 'time' in event
      ? scheduledExecutionName(String((event as { time: unknown }).time))
      : auditExecutionName(now));
  return sfn.startExecution(name, event);
}
