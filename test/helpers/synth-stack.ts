import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { addPolicyChecks } from '../../infra/policy-checks';
import type { SessionExportProps } from '../../infra/session-export-props';
import { SessionExportStack } from '../../infra/session-export-stack';

/** Template tests need no asset: skipping the esbuild bundle saves seconds per synth. */
export const SKIP_BUNDLING = { 'aws:cdk:bundling-stacks': [] };
/** The context `cdk synth` runs with (cdk.json). */
export const CDK_JSON_CONTEXT = (
  JSON.parse(readFileSync(path.join(__dirname, '../../cdk.json'), 'utf8')) as {
    context: Record<string, unknown>;
  }
).context;
/** The feature flags of cdk.json, so the tests synthesize the same template `cdk synth` does. */
export const FEATURE_FLAGS = Object.fromEntries(
  Object.entries(CDK_JSON_CONTEXT).filter(([key]) => key.startsWith('@aws-cdk/')),
);
export const ACCOUNT_ENV = { account: '123456789012', region: 'eu-west-1' };
export const STACK_NAME = 'MoonKeySessionExport';

/**
 * Synthesizes one stack with the policy checks `cdk synth` runs (cdk-nag AwsSolutions and the
 * Control Tower controls through cfn-guard); it throws on any unacknowledged finding.
 */
export function synthStack(props: SessionExportProps, context: Record<string, unknown> = {}): Template {
  const app = new App({ context: { ...SKIP_BUNDLING, ...FEATURE_FLAGS, ...context } });
  const stack = new SessionExportStack(app, STACK_NAME, { env: ACCOUNT_ENV, ...props });
  addPolicyChecks(app);
  return Template.fromStack(stack);
}
