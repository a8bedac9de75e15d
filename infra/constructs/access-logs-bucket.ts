import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { BlockPublicAccess, Bucket, BucketEncryption, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeGuard, BUCKET_GUARD_REASONS } from '../policy-checks';

export interface AccessLogsBucketProps {
  /**
   * Days server access logs are kept.
   * @default 90
   */
  readonly expireAfterDays?: number;
}

/**
 * The server access log destination of the stack's buckets (export data, Athena results):
 * private, ACLs disabled (log delivery is granted by bucket policy), encrypted, TLS-only, retained,
 * logs expire after 90 days.
 */
export class AccessLogsBucket extends Construct {
  readonly bucket: Bucket;

  constructor(scope: Construct, id: string, props: AccessLogsBucketProps = {}) {
    super(scope, id);
    this.bucket = new Bucket(this, 'Bucket', {
      encryption: BucketEncryption.S3_MANAGED,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      // No ACLs (Control Tower CT.S3.PR.5): with the feature flag
      // `@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy` (cdk.json) CDK grants the S3 logging service
      // through this bucket's policy, scoped to the source buckets and this account, instead of the
      // LogDeliveryWrite ACL (which BUCKET_OWNER_ENFORCED would refuse at synth).
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        { id: 'expire-access-logs', expiration: Duration.days(props.expireAfterDays ?? 90) },
        { id: 'abort-incomplete-multipart-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    Validations.of(this.bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'This bucket is the server access log destination of the stack buckets; logging it into itself would create a feedback loop, and a second log bucket would need the same exception.',
    });
    acknowledgeGuard(this.bucket, {
      ...BUCKET_GUARD_REASONS,
      s3_bucket_logging_enabled_check:
        'This bucket is the server access log destination of the stack buckets; logging it into itself would create a feedback loop.',
      s3_bucket_default_encryption_kms_check:
        'S3 server access log delivery supports only SSE-S3 on the destination bucket, not SSE-KMS.',
      s3_bucket_versioning_enabled_check:
        'Log objects are written once under unique keys and expire after 90 days; versioning would keep nothing worth keeping.',
    });
  }
}
