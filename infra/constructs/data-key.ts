import { RemovalPolicy } from 'aws-cdk-lib';
import { AnyPrincipal, Effect, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { type IKey, Key } from 'aws-cdk-lib/aws-kms';
import type { Construct } from 'constructs';

/**
 * The customer-managed key of the snapshot data (export bucket, Athena results), from the
 * `encryptionKey` prop: `'create'` makes one, an ARN imports one, nothing means SSE-S3.
 *
 * A created key rotates yearly and is RETAINED like the buckets it encrypts: deleting it would make
 * every retained snapshot unreadable.
 */
export function dataEncryptionKey(scope: Construct, id: string, spec: string | undefined): IKey | undefined {
  if (spec === undefined) return undefined;
  if (spec !== 'create') return Key.fromKeyArn(scope, id, spec);
  const key = new Key(scope, id, {
    description: 'MoonKey session snapshots: export bucket and Athena query results',
    enableKeyRotation: true,
    removalPolicy: RemovalPolicy.RETAIN,
  });
  denyGrantsExceptForAwsServices(key);
  return key;
}

/**
 * Grants only for AWS services acting on a resource (Control Tower CT.KMS.PR.3): S3, Athena and
 * Secrets Manager use our keys through IAM permissions, so a grant created by anyone else is not ours.
 */
export function denyGrantsExceptForAwsServices(key: Key): void {
  key.addToResourcePolicy(
    new PolicyStatement({
      sid: 'GrantsOnlyForAwsServices',
      effect: Effect.DENY,
      principals: [new AnyPrincipal()],
      actions: ['kms:CreateGrant'],
      resources: ['*'],
      conditions: {
        BoolIfExists: { 'kms:GrantIsForAWSResource': 'false', 'aws:PrincipalIsAWSService': 'false' },
      },
    }),
  );
}

/** A key named by ARN in the props (an existing secret's or bucket's), or none. */
export function importedKey(scope: Construct, id: string, arn: string | undefined): IKey | undefined {
  return arn === undefined ? undefined : Key.fromKeyArn(scope, id, arn);
}
