import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, relative } from 'node:path';

const REPO_ROOT = join(__dirname, '..');
const CACHE_DIR = join(REPO_ROOT, '.local-data', 'asl');
/** What the synthesized definitions depend on: the stack's code and the packages it was built with. */
const INPUTS = ['infra', 'lambda/core', 'package-lock.json'];

/** The two Amazon States Language documents the stack deploys, as plain JSON. */
export interface StateMachineDefinitions {
  /** The export run: gate, Plan, Map of Work loops, Commit, and the Abort path. */
  readonly export: AslDefinition;
  /** The scheduled-run launcher Scheduler starts. */
  readonly launcher: AslDefinition;
  /** The placeholder ARN the export definition's Tasks invoke (the function). */
  readonly functionArn: string;
  /** The placeholder ARN of the export state machine (what the launcher starts). */
  readonly exportArn: string;
}

// biome-ignore lint/suspicious/noExplicitAny: ASL is a JSON document checked by the runner, not by TypeScript.
export type AslDefinition = { StartAt: string; States: Record<string, any>; [key: string]: unknown };

const PLACEHOLDER = { partition: 'aws', region: 'local-1', account: '000000000000' };

/**
 * The state machine definitions exactly as `cdk synth` renders them for the real stack (bundling
 * skipped: the definitions do not depend on the bundle), with CloudFormation's tokens
 * (`Fn::GetAtt` of the function, `Ref` of a state machine, the partition) resolved to
 * placeholder ARNs. Synthesizing costs about 5 s of loading aws-cdk-lib, so the result is cached
 * under .local-data/asl/, keyed by a hash of everything the stack is built from.
 */
export async function loadStateMachineDefinitions(
  options: { cache?: boolean } = {},
): Promise<StateMachineDefinitions> {
  const cacheFile = join(CACHE_DIR, `${inputsHash()}.json`);
  if (options.cache !== false && existsSync(cacheFile)) {
    return JSON.parse(readFileSync(cacheFile, 'utf8')) as StateMachineDefinitions;
  }
  const definitions = await synthesizeDefinitions();
  if (options.cache !== false) {
    mkdirSync(CACHE_DIR, { recursive: true });
    // Written aside and renamed: a process reading the cache never sees half a file.
    const partial = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(partial, JSON.stringify(definitions));
    renameSync(partial, cacheFile);
  }
  return definitions;
}

async function synthesizeDefinitions(): Promise<StateMachineDefinitions> {
  // Imported here so a cached run never pays for loading aws-cdk-lib.
  const [{ App, Stack }, { SessionExportStack }] = await Promise.all([
    import('aws-cdk-lib'),
    import('../infra/session-export-stack'),
  ]);
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new SessionExportStack(app, 'LocalSessionExport', {
    env: { account: PLACEHOLDER.account, region: PLACEHOLDER.region },
    createDemoUsersTable: true,
  });
  const template = app.synth().getStackByName(stack.stackName).template as {
    Resources: Record<string, { Type: string; Properties: Record<string, unknown> }>;
  };
  const logicalId = (construct: { node: { defaultChild?: unknown } }) =>
    Stack.of(stack).getLogicalId(construct.node.defaultChild as never);
  const arnOf = (id: string): string => {
    const type = template.Resources[id]?.Type;
    const { partition, region, account } = PLACEHOLDER;
    if (type === 'AWS::Lambda::Function')
      return `arn:${partition}:lambda:${region}:${account}:function:${id}`;
    if (type === 'AWS::StepFunctions::StateMachine')
      return `arn:${partition}:states:${region}:${account}:stateMachine:${id}`;
    throw new Error(
      `The state machine definition refers to ${id} (${type}), which the local runner cannot stand in for`,
    );
  };
  const definitionOf = (id: string): AslDefinition => {
    const body = template.Resources[id]?.Properties.DefinitionString;
    return JSON.parse(resolveTokens(body, arnOf)) as AslDefinition;
  };
  const exportId = logicalId(stack.export.stateMachine);
  const functionId = logicalId(stack.exportFunction.function);
  return {
    export: definitionOf(exportId),
    launcher: definitionOf(logicalId(stack.launcher.stateMachine)),
    functionArn: arnOf(functionId),
    exportArn: arnOf(exportId),
  };
}

/** Renders the `Fn::Join` CloudFormation makes of a definition that mentions other resources. */
export function resolveTokens(value: unknown, arnOf: (logicalId: string) => string): string {
  if (typeof value === 'string') return value;
  if (typeof value !== 'object' || value === null) throw new Error(`Unexpected token ${String(value)}`);
  const v = value as Record<string, unknown>;
  if ('Fn::Join' in v) {
    const [separator, parts] = v['Fn::Join'] as [string, unknown[]];
    return parts.map((p) => resolveTokens(p, arnOf)).join(separator);
  }
  if ('Ref' in v) {
    if (v.Ref === 'AWS::Partition') return PLACEHOLDER.partition;
    if (v.Ref === 'AWS::Region') return PLACEHOLDER.region;
    if (v.Ref === 'AWS::AccountId') return PLACEHOLDER.account;
    return arnOf(v.Ref as string);
  }
  if ('Fn::GetAtt' in v) {
    const [id, attribute] = v['Fn::GetAtt'] as [string, string];
    if (attribute !== 'Arn') throw new Error(`Unexpected Fn::GetAtt ${id}.${attribute}`);
    return arnOf(id);
  }
  throw new Error(`Unexpected CloudFormation token ${JSON.stringify(value)}`);
}

function inputsHash(): string {
  const hash = createHash('sha256');
  for (const input of INPUTS) {
    for (const file of filesUnder(join(REPO_ROOT, input))) {
      hash.update(relative(REPO_ROOT, file));
      hash.update(readFileSync(file));
    }
  }
  return hash.digest('hex').slice(0, 16);
}

function filesUnder(path: string): string[] {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path)
    .sort()
    .flatMap((name) => filesUnder(join(path, name)));
}
