import { CfnGuardValidator } from '@cdklabs/cdk-validator-cfnguard';
import {
  type App,
  type IPolicyValidationContext,
  type IPolicyValidationPlugin,
  type PolicyValidationPluginReport,
  type Stage,
  Validations,
} from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/**
 * The policy checks every synth runs, `cdk synth` and the tests alike: cdk-nag's AwsSolutions pack
 * and the AWS Control Tower proactive controls (cfn-guard rules, offline). Any finding without an
 * acknowledgement fails the synth.
 */
export function addPolicyChecks(app: App | Stage): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new StrictCfnGuard(new CfnGuardValidator()));
}

/**
 * The cfn-guard plugin with every violation marked `severity: 'error'`. The plugin leaves severity
 * unset, and once any of its findings is acknowledged, aws-cdk-lib (2.276) re-judges the report as
 * "no violation with severity error", which an unset severity passes: every unacknowledged Control
 * Tower finding was then printed but no longer failed the synth. Same name, so acknowledgements
 * (`cdk-validator-cfnguard::<rule>`) still match.
 */
export class StrictCfnGuard implements IPolicyValidationPlugin {
  readonly name: string;
  readonly version?: string;
  readonly ruleIds?: string[];

  constructor(private readonly inner: IPolicyValidationPlugin) {
    this.name = inner.name;
    this.version = inner.version;
    this.ruleIds = inner.ruleIds;
  }

  validate(context: IPolicyValidationContext): PolicyValidationPluginReport {
    const report = this.inner.validate(context);
    return {
      ...report,
      violations: report.violations.map((v) => ({ ...v, severity: v.severity ?? 'error' })),
    };
  }
}

/** cfn-guard rule names of the Control Tower controls this stack acknowledges somewhere. */
export type GuardRule =
  | 's3_bucket_default_encryption_kms_check' // CT.S3.PR.10
  | 's3_bucket_versioning_enabled_check' // CT.S3.PR.11
  | 's3_bucket_logging_enabled_check' // CT.S3.PR.2
  | 's3_event_notifications_enabled_check' // CT.S3.PR.4
  | 's3_bucket_object_lock_enabled_check' // CT.S3.PR.9
  | 'athena_workgroup_results_encrypted_at_rest_kms_check' // CT.ATHENA.PR.2
  | 'cloudwatch_log_group_retention_period_check' // CT.CLOUDWATCH.PR.2
  | 'cloudwatch_log_group_encrypted_check' // CT.CLOUDWATCH.PR.3
  | 'lambda_inside_vpc_check' // CT.LAMBDA.PR.3
  | 'sqs_dlq_check'; // CT.SQS.PR.1

/**
 * Accepts Control Tower findings on one construct, each with its reason, the way cdk-nag findings
 * are acknowledged: the id is the one the validator prints (`cdk-validator-cfnguard::<rule>`).
 */
export function acknowledgeGuard(scope: IConstruct, reasons: Partial<Record<GuardRule, string>>): void {
  for (const [rule, reason] of Object.entries(reasons)) {
    Validations.of(scope).acknowledge({ id: `cdk-validator-cfnguard::${rule}`, reason });
  }
}

/** Reasons shared by every bucket of the stack. */
export const BUCKET_GUARD_REASONS = {
  s3_event_notifications_enabled_check:
    'Nothing reacts to object events: the job writes, readers query through Athena, and the manifest is the commit signal.',
  s3_bucket_object_lock_enabled_check:
    'Objects are deleted on purpose (lifecycle expiry, superseded runs of a rerun slot); Object Lock would block exactly that.',
} as const satisfies Partial<Record<GuardRule, string>>;
