import { RemovalPolicy } from 'aws-cdk-lib';
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
  return new Key(scope, id, {
    description: 'MoonKey session snapshots: export bucket and Athena query results',
    enableKeyRotation: true,
    removalPolicy: RemovalPolicy.RETAIN,
  });
}

/** A key named by ARN in the props (an existing secret's or bucket's), or none. */
export function importedKey(scope: Construct, id: string, arn: string | undefined): IKey | undefined {
  return arn === undefined ? undefined : Key.fromKeyArn(scope, id, arn);
}
