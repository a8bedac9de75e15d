/** cdk-nag and cfn-guard Control Tower checks at synth. */
import { readFileSync } from 'node:fs';
import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import { App, Stack, Validations } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { addPolicyChecks } from '../../infra/policy-checks';
import { SessionExportStack } from '../../infra/session-export-stack';
import { ACCOUNT_ENV, FEATURE_FLAGS, SKIP_BUNDLING } from '../helpers/synth-stack';

describe('policy checks at synth (cdk-nag and cfn-guard Control Tower controls)', () => {
  /**
   * The stack plus one queue that only Control Tower objects to (no DLQ: CT.SQS.PR.1; cdk-nag's own
   * DLQ rule is acknowledged on it), synthesized with `plugins`. Returns the validation report.
   */
  function synthWithStrayQueue(plugins: (app: App) => void): { threw: boolean; report?: unknown } {
    const app = new App({ context: { ...SKIP_BUNDLING, ...FEATURE_FLAGS } });
    const stack = new SessionExportStack(app, 'MoonKeySessionExport', {
      env: ACCOUNT_ENV,
      createDemoUsersTable: true,
    });
    const stray = new Queue(Stack.of(stack), 'StrayQueue', {
      enforceSSL: true,
      encryption: QueueEncryption.SQS_MANAGED,
    });
    Validations.of(stray).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: 'the test wants cfn-guard alone to object',
    });
    plugins(app);
    const quiet = jest.spyOn(console, 'error').mockImplementation(() => {});
    try {
      Template.fromStack(stack);
      return { threw: false };
    } catch (error) {
      const file = /found in: (\S+\.json)/.exec((error as Error).message)?.[1];
      return { threw: true, report: file ? JSON.parse(readFileSync(file, 'utf8')) : undefined };
    } finally {
      quiet.mockRestore();
    }
  }

  it('fails the synth on a Control Tower finding nobody acknowledged', () => {
    const outcome = synthWithStrayQueue(addPolicyChecks);
    expect(outcome.threw).toBe(true);
    const guard = (
      outcome.report as {
        pluginReports: {
          pluginName: string;
          conclusion: string;
          violations: { ruleName: string; violatingConstructs: { constructPath: string }[] }[];
        }[];
      }
    ).pluginReports.find((r) => r.pluginName === 'cdk-validator-cfnguard');
    expect(guard?.conclusion).toBe('failure');
    expect(
      guard?.violations.map((v) => [v.ruleName, v.violatingConstructs.map((c) => c.constructPath)]),
    ).toEqual([['sqs_dlq_check', ['MoonKeySessionExport/StrayQueue/Resource']]]);
  });

  it('would let it pass with the bare plugin once anything is acknowledged (why StrictCfnGuard exists)', () => {
    const outcome = synthWithStrayQueue((app) => Validations.of(app).addPlugins(new CfnGuardValidator()));
    expect(outcome.threw).toBe(false);
  });
});
