/**
 * Template assertions on the stack with its defaults: the export bucket and the access-log bucket.
 */
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { SessionExportStack } from '../../infra/session-export-stack';
import { ACCOUNT_ENV, CDK_JSON_CONTEXT, SKIP_BUNDLING, synthStack } from '../helpers/synth-stack';

describe('SessionExportStack with defaults: the buckets', () => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act: cdk-nag and the Control Tower controls run during this synth and throw on any finding.
    template = synthStack({ createDemoUsersTable: true });
  });

  describe('the export bucket', () => {
    it('is encrypted, private, retained, ages snapshots to Standard-IA and Glacier IR, expires them and stale uploads', () => {
      template.hasResource('AWS::S3::Bucket', {
        DeletionPolicy: 'Retain',
        Properties: {
          BucketEncryption: {
            ServerSideEncryptionConfiguration: [
              { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
            ],
          },
          PublicAccessBlockConfiguration: {
            BlockPublicAcls: true,
            BlockPublicPolicy: true,
            IgnorePublicAcls: true,
            RestrictPublicBuckets: true,
          },
          LoggingConfiguration: Match.objectLike({ LogFilePrefix: 'export-bucket/' }),
          LifecycleConfiguration: {
            Rules: [
              {
                Id: 'expire-snapshots',
                Prefix: 'moonkey/',
                ExpirationInDays: 400,
                Transitions: [
                  { StorageClass: 'STANDARD_IA', TransitionInDays: 30 },
                  { StorageClass: 'GLACIER_IR', TransitionInDays: 90 },
                ],
                Status: 'Enabled',
              },
              {
                Id: 'abort-incomplete-multipart-uploads',
                AbortIncompleteMultipartUpload: { DaysAfterInitiation: 1 },
                Status: 'Enabled',
              },
            ],
          },
        },
      });
      const exportBucket = Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) =>
        id.startsWith('ExportBucket'),
      );
      expect(exportBucket?.[1].Properties.VersioningConfiguration).toBeUndefined();
    });

    it('refuses non-TLS requests in its bucket policy', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: Match.stringLikeRegexp('^ExportBucket') },
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({
              Effect: 'Deny',
              Action: 's3:*',
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            }),
          ]),
        },
      });
    });
  });

  describe('the access-log bucket', () => {
    const accessLogs = () =>
      Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) =>
        id.startsWith('AccessLogsBucket'),
      )?.[1];

    it('disables ACLs (BUCKET_OWNER_ENFORCED) and has no LogDeliveryWrite ACL', () => {
      const bucket = accessLogs();
      expect(bucket?.Properties.OwnershipControls).toEqual({
        Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }],
      });
      expect(bucket?.Properties.AccessControl).toBeUndefined();
      expect(bucket?.DeletionPolicy).toBe('Retain');
    });

    it('lets S3 log delivery write by bucket policy, per source bucket and this account only', () => {
      template.hasResourceProperties('AWS::S3::BucketPolicy', {
        Bucket: { Ref: Match.stringLikeRegexp('^AccessLogsBucket') },
        PolicyDocument: {
          Statement: Match.arrayWith(
            ['ExportBucket', 'AthenaResultsBucket'].map((source) =>
              Match.objectLike({
                Effect: 'Allow',
                Principal: { Service: 'logging.s3.amazonaws.com' },
                Action: 's3:PutObject',
                Condition: {
                  ArnLike: {
                    'aws:SourceArn': { 'Fn::GetAtt': [Match.stringLikeRegexp(`^${source}`), 'Arn'] },
                  },
                  StringEquals: { 'aws:SourceAccount': ACCOUNT_ENV.account },
                },
              }),
            ),
          ),
        },
      });
    });

    it('is synthesized with the bucket-policy feature flag from cdk.json', () => {
      expect(CDK_JSON_CONTEXT['@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy']).toBe(true);
    });

    it('needs no flag from the app: the stack sets it for itself (an embedding app has no cdk.json)', () => {
      const app = new App({ context: SKIP_BUNDLING });
      const stack = new SessionExportStack(app, 'Embedded', { env: ACCOUNT_ENV, createDemoUsersTable: true });
      const embedded = Template.fromStack(stack);
      embedded.hasResourceProperties('AWS::S3::Bucket', {
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
        LoggingConfiguration: Match.absent(),
      });
      embedded.hasResourceProperties('AWS::S3::BucketPolicy', {
        PolicyDocument: {
          Statement: Match.arrayWith([
            Match.objectLike({ Principal: { Service: 'logging.s3.amazonaws.com' }, Action: 's3:PutObject' }),
          ]),
        },
      });
    });
  });
});
