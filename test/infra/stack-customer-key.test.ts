/** The stack with a created customer-managed key (encryptionKey: create). */
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { statementsOfRole } from '../helpers/stack-template';
import { synthStack } from '../helpers/synth-stack';

const synth = synthStack;

describe('SessionExportStack with a created customer-managed key (encryptionKey: create)', () => {
  let template: Template;

  beforeAll(() => {
    template = synth({
      createDemoUsersTable: true,
      encryptionKey: 'create',
      infrequentAccessAfterDays: 0,
      glacierInstantRetrievalAfterDays: 60,
    });
  });

  it('creates one rotating key, retained with the data it encrypts', () => {
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.hasResource('AWS::KMS::Key', {
      Properties: Match.objectLike({ EnableKeyRotation: true }),
      DeletionPolicy: 'Retain',
    });
  });

  it('encrypts the export bucket and the Athena results bucket with it (SSE-KMS, S3 Bucket Key)', () => {
    const sseKms = {
      BucketKeyEnabled: true,
      ServerSideEncryptionByDefault: {
        SSEAlgorithm: 'aws:kms',
        KMSMasterKeyID: { 'Fn::GetAtt': [keyId(), 'Arn'] },
      },
    };
    const encryptionOf = (prefix: string) =>
      Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) => id.startsWith(prefix))?.[1]
        .Properties.BucketEncryption.ServerSideEncryptionConfiguration;
    expect(encryptionOf('ExportBucket')).toEqual([sseKms]);
    expect(encryptionOf('AthenaResultsBucket')).toEqual([sseKms]);
    // S3 access logs cannot be delivered to an SSE-KMS bucket: that one stays SSE-S3.
    expect(encryptionOf('AccessLogsBucket')).toEqual([
      { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
    ]);
    template.hasResourceProperties('AWS::Athena::WorkGroup', {
      WorkGroupConfiguration: Match.objectLike({
        ResultConfiguration: Match.objectLike({
          EncryptionConfiguration: {
            EncryptionOption: 'SSE_KMS',
            KmsKey: { 'Fn::GetAtt': [keyId(), 'Arn'] },
          },
        }),
      }),
    });
  });

  it('lets the function use the key through S3 only', () => {
    expect(statementsOfRole(template, 'JobRole').find((s) => s.Sid === 'SnapshotBucketKey')).toMatchObject({
      Action: ['kms:GenerateDataKey', 'kms:Decrypt'],
      Resource: { 'Fn::GetAtt': [keyId(), 'Arn'] },
    });
  });

  it('applies only the transitions asked for (0 turns one off)', () => {
    const exportBucket = Object.entries(template.findResources('AWS::S3::Bucket')).find(([id]) =>
      id.startsWith('ExportBucket'),
    )?.[1];
    const rule = exportBucket?.Properties.LifecycleConfiguration.Rules.find(
      (r: { Id: string }) => r.Id === 'expire-snapshots',
    );
    expect(rule.Transitions).toEqual([{ StorageClass: 'GLACIER_IR', TransitionInDays: 60 }]);
  });

  function keyId(): string {
    return Object.keys(template.findResources('AWS::KMS::Key'))[0] ?? '';
  }
});
