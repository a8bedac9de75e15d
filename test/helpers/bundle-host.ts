import { type ChildProcess, fork } from 'node:child_process';
import { join } from 'node:path';
import type { PhaseHandler } from '../../local/state-machine-runner';

export interface BundleHost {
  /** What the local state-machine runner invokes: each call is one invocation in the child. */
  readonly handler: PhaseHandler;
  /** The Node version the bundle runs on (the child's `process.version`). */
  readonly node: string;
  /** Everything the function wrote to stdout and stderr (its JSON log lines). */
  output(): string;
  stop(): Promise<void>;
}

type Reply = { id: number; result?: unknown; error?: { name: string; message: string } };

/**
 * Starts the minified bundle (`entry`, the staged `index.js`) in a plain Node process with exactly
 * `env`, so the local state-machine runner can drive it like Step Functions drives the deployed
 * function: the same definition, the same payloads, the artifact instead of the sources.
 */
export async function startBundleHost(entry: string, env: Record<string, string>): Promise<BundleHost> {
  const child: ChildProcess = fork(join(__dirname, 'bundle-host-child.cjs'), [], {
    env: { ...env, BUNDLE_ENTRY: entry },
    // No jest or tsx flags: the bundle runs on bare Node, as in Lambda.
    execArgv: [],
    serialization: 'json',
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const pending = new Map<number, { resolve: (value: unknown) => void; reject: (error: Error) => void }>();
  let exited: Error | undefined;
  child.on('exit', (code, signal) => {
    exited = new Error(
      `the bundle's process exited (code ${code}, signal ${signal}):\n${output.slice(-2000)}`,
    );
    for (const { reject } of pending.values()) reject(exited);
    pending.clear();
  });
  const node = await new Promise<string>((resolve, reject) => {
    child.once('message', (message: { ready?: boolean; node?: string }) => {
      if (message.ready && message.node) resolve(message.node);
      else reject(new Error(`unexpected first message from the bundle host: ${JSON.stringify(message)}`));
    });
    child.once('exit', () => reject(exited));
  });
  child.on('message', (reply: Reply) => {
    const waiting = pending.get(reply.id);
    if (!waiting) return;
    pending.delete(reply.id);
    if (reply.error)
      waiting.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name }));
    else waiting.resolve(reply.result);
  });
  let next = 0;
  const handler: PhaseHandler = (event, context) => {
    if (exited) return Promise.reject(exited);
    const id = ++next;
    return new Promise((resolve, reject) => {
      pending.set(id, { resolve, reject });
      // The runner's own context (fakeLambdaContext): its fields as they are, its clock as the
      // time left, so the bundle sees what the sources see.
      const fields = Object.fromEntries(Object.entries(context).filter(([, v]) => typeof v !== 'function'));
      child.send({ id, event, context: fields, remainingMs: context.getRemainingTimeInMillis() });
    });
  };
  return {
    handler,
    node,
    output: () => output,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await gone;
    },
  };
}
