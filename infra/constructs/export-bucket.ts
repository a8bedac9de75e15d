import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type { IKey } from 'aws-cdk-lib/aws-kms';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  type LifecycleRule,
  ObjectOwnership,
  StorageClass,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeGuard, BUCKET_GUARD_REASONS } from '../policy-checks';

export interface ExportBucketProps {
  /**
   * Name of an existing bucket to use instead of creating one.
   * @default - a bucket is created
   */
  readonly existingBucketName?: string;
  /** Key prefix the job writes under (lifecycle rules are scoped to it). */
  readonly prefix: string;
  /**
   * Days until snapshot objects under the prefix expire (created bucket only).
   * @default 400
   */
  readonly expireAfterDays?: number;
  /**
   * Days after which snapshot objects move to STANDARD_IA (created bucket only); 0 never.
   * @default 30
   */
  readonly infrequentAccessAfterDays?: number;
  /**
   * Days after which snapshot objects move to GLACIER_IR (created bucket only); 0 never.
   * @default 90
   */
  readonly glacierInstantRetrievalAfterDays?: number;
  /**
   * Versioning of the created bucket.
   * @default false
   */
  readonly versioned?: boolean;
  /**
   * Customer-managed KMS key of the created bucket (SSE-KMS with an S3 Bucket Key).
   * @default - SSE-S3
   */
  readonly encryptionKey?: IKey;
  /** Where a created bucket sends its server access logs. */
  readonly accessLogsBucket: IBucket;
}

/**
 * Where snapshots land. A created bucket is private (all public access blocked, bucket-owner
 * objects), SSE-S3 encrypted (or SSE-KMS with the given key), TLS-only, access-logged, moves
 * snapshots to cheaper storage classes as they age and expires them after N days, aborts multipart
 * uploads a crashed run left behind after a day, and is RETAINED when the stack goes. An existing
 * bucket is used as is.
 */
export class ExportBucket extends Construct {
  readonly bucket: IBucket;

  constructor(scope: Construct, id: string, props: ExportBucketProps) {
    super(scope, id);
    if (props.existingBucketName !== undefined) {
      this.bucket = Bucket.fromBucketName(this, 'Existing', props.existingBucketName);
      return;
    }
    const expireAfterDays = props.expireAfterDays ?? 400;
    const versioned = props.versioned ?? false;
    this.bucket = new Bucket(this, 'Bucket', {
      ...(props.encryptionKey
        ? { encryption: BucketEncryption.KMS, encryptionKey: props.encryptionKey, bucketKeyEnabled: true }
        : { encryption: BucketEncryption.S3_MANAGED }),
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned,
      removalPolicy: RemovalPolicy.RETAIN,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: 'export-bucket/',
      lifecycleRules: [
        {
          id: 'expire-snapshots',
          prefix: `${props.prefix}/`,
          expiration: Duration.days(expireAfterDays),
          transitions: snapshotTransitions(props, expireAfterDays),
          ...(versioned ? { noncurrentVersionExpiration: Duration.days(7) } : {}),
        },
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    acknowledgeGuard(this.bucket, {
      ...BUCKET_GUARD_REASONS,
      ...(props.encryptionKey
        ? {}
        : {
            s3_bucket_default_encryption_kms_check:
              'SSE-S3 unless the deployer sets encryptionKey (a customer-managed key, which then also needs grants for every Athena user).',
          }),
      ...(versioned
        ? {}
        : {
            s3_bucket_versioning_enabled_check:
              'Off by default (prop bucketVersioned): superseded runs are deleted on purpose, and versions would keep every replaced copy, invisible to Athena and billed.',
          }),
    });
  }
}

/**
 * Old snapshots are read rarely (audits, year-on-year comparisons) but kept for a year: Standard-IA
 * after a month and Glacier Instant Retrieval after a quarter cut storage cost while Athena still
 * reads them directly (both classes answer GetObject at once, unlike Glacier Flexible Retrieval).
 * S3 skips objects under 128 KB by default, so small manifests stay in Standard.
 */
function snapshotTransitions(
  props: ExportBucketProps,
  expireAfterDays: number,
): NonNullable<LifecycleRule['transitions']> {
  // A default transition at or after expiry would never happen (and S3 refuses it): drop it.
  const orNever = (days: number | undefined, fallback: number) =>
    days ?? (fallback < expireAfterDays ? fallback : 0);
  const ia = orNever(props.infrequentAccessAfterDays, 30);
  const glacierIr = orNever(props.glacierInstantRetrievalAfterDays, 90);
  return [
    ...(ia > 0 ? [{ storageClass: StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(ia) }] : []),
    ...(glacierIr > 0
      ? [{ storageClass: StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(glacierIr) }]
      : []),
  ];
}
