import type { Template } from 'aws-cdk-lib/assertions';

/** Ids of resources the stack is given instead of creating them (existing secret, keys). */
export const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey/api-key-AbC123';
export const SECRET_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/11111111-2222-3333-4444-555555555555';
export const BUCKET_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/mrk-0123456789abcdef0123456789abcdef';
export const RESULTS_KEY_ARN = 'arn:aws:kms:eu-west-1:123456789012:key/99999999-8888-7777-6666-555555555555';

export type Statement = {
  Sid?: string;
  Effect: string;
  Action: string | string[];
  Resource: unknown;
  Condition?: unknown;
};

/** Every statement of the inline policies attached to roles whose logical id starts with `rolePrefix`. */
export function statementsOfRole(template: Template, rolePrefix: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref.startsWith(rolePrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

export const actionsOf = (statements: Statement[]) =>
  statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action])).sort();
