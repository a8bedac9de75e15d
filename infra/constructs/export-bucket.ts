import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectOwnership,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

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
   * Versioning of the created bucket.
   * @default false
   */
  readonly versioned?: boolean;
  /** Where a created bucket sends its server access logs. */
  readonly accessLogsBucket: IBucket;
}

/**
 * Where snapshots land. A created bucket is private (all public access blocked, bucket-owner
 * objects), SSE-S3 encrypted, TLS-only, access-logged, expires snapshots after N days, aborts
 * multipart uploads a crashed run left behind after a day, and is RETAINED when the stack goes.
 * An existing bucket is used as is.
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
      encryption: BucketEncryption.S3_MANAGED,
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
          ...(versioned ? { noncurrentVersionExpiration: Duration.days(7) } : {}),
        },
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
  }
}
