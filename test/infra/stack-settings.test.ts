/** What synth refuses, the first-deploy switch and props read from CDK context. */
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { propsFromContext } from '../../infra/props-from-context';
import type { SessionExportProps } from '../../infra/session-export-props';
import { SessionExportStack } from '../../infra/session-export-stack';
import { BUCKET_KEY_ARN, SECRET_KEY_ARN } from '../helpers/stack-template';
import { ACCOUNT_ENV, FEATURE_FLAGS, SKIP_BUNDLING } from '../helpers/synth-stack';

describe('settings validation', () => {
  const build = (props: SessionExportProps) => () =>
    new SessionExportStack(new App({ context: SKIP_BUNDLING }), 'S', props);
  /** What synthesizing a demo-table stack with `props` refuses with ('' when it synthesizes). */
  const message = (props: SessionExportProps) => {
    try {
      build({ createDemoUsersTable: true, ...props })();
    } catch (error) {
      return (error as Error).message;
    }
    return '';
  };

  it('rejects every conflict at once, in one message', () => {
    expect(
      build({
        usersTableName: 'users',
        createDemoUsersTable: true,
        existingBucketName: 'acme-exports',
        snapshotRetentionDays: 30,
        bucketVersioned: true,
        apiKeySecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey',
        jobEnvironment: {
          MOONKEY_API_KEY: 'plain',
          EXPORT_PREFIX: 'x',
          EXPORT_NOPE: '1',
          EXPORT_GZIP_LEVEL: '42',
          EXPORT_NOT_FOUND_USERS_TOLERANCE: 'half',
        },
      }),
    ).toThrow(
      new RegExp(
        [
          'Invalid SessionExport settings \\(9\\)',
          'usersTableName and createDemoUsersTable conflict',
          'apiKeySecretArn must be the full Secrets Manager secret ARN',
          'existingBucketName and snapshotRetentionDays conflict',
          'existingBucketName and bucketVersioned conflict',
          'jobEnvironment.MOONKEY_API_KEY is refused',
          'jobEnvironment.EXPORT_PREFIX is set by the stack',
          'jobEnvironment.EXPORT_NOPE is not a variable the job reads',
          'jobEnvironment.EXPORT_GZIP_LEVEL="42" is rejected',
          'jobEnvironment.EXPORT_NOT_FOUND_USERS_TOLERANCE="half" is rejected',
        ].join('[\\s\\S]*'),
      ),
    );
  });

  it('refuses a Map narrower than the segments Plan may choose, and more than 40 segments', () => {
    expect(message({ maxSegmentConcurrency: 8 })).toContain(
      'maxSegmentConcurrency 8 is below the 16 segments Plan may choose (EXPORT_SCAN_SEGMENTS=auto',
    );
    expect(message({ maxSegmentConcurrency: 8, concurrency: 8 })).toBe('');
    expect(message({ maxSegmentConcurrency: 2, jobEnvironment: { EXPORT_SCAN_SEGMENTS: '3' } })).toContain(
      'maxSegmentConcurrency 2 is below the 3 segments Plan may choose (EXPORT_SCAN_SEGMENTS)',
    );
    expect(message({ jobEnvironment: { EXPORT_SCAN_SEGMENTS: '41' } })).toContain(
      'EXPORT_SCAN_SEGMENTS=41: an inline Map runs at most 40 segments at once',
    );
  });

  it('refuses more scan segments than concurrency, the whole run’s limit on calls in flight', () => {
    expect(message({ concurrency: 2, jobEnvironment: { EXPORT_SCAN_SEGMENTS: '4' } })).toContain(
      'jobEnvironment.EXPORT_SCAN_SEGMENTS=4 is above concurrency 2 (EXPORT_CONCURRENCY): concurrency limits the calls in flight of the whole run and every segment needs at least one',
    );
    expect(message({ jobEnvironment: { EXPORT_SCAN_SEGMENTS: '17' } })).toContain(
      'jobEnvironment.EXPORT_SCAN_SEGMENTS=17 is above concurrency 16',
    );
    expect(message({ concurrency: 4, jobEnvironment: { EXPORT_SCAN_SEGMENTS: '4' } })).toBe('');
  });

  it('rejects key ARNs that are not key ARNs, keys without their resource, and impossible transitions', () => {
    const attempt = build({
      createDemoUsersTable: true,
      apiKeySecretKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:alias/moonkey',
      existingBucketKmsKeyArn: SECRET_KEY_ARN,
      encryptionKey: 'my-key',
      infrequentAccessAfterDays: 10,
      glacierInstantRetrievalAfterDays: 30,
      snapshotRetentionDays: 20,
    });
    let message = '';
    try {
      attempt();
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('Invalid SessionExport settings (7)');
    expect(message).toContain('apiKeySecretKmsKeyArn must be a KMS key ARN');
    expect(message).toContain('encryptionKey must be a KMS key ARN');
    expect(message).toContain('apiKeySecretKmsKeyArn needs apiKeySecretArn');
    expect(message).toContain('existingBucketKmsKeyArn needs existingBucketName');
    expect(message).toContain('infrequentAccessAfterDays must be 0 (never) or at least 30');
    expect(message).toContain(
      'glacierInstantRetrievalAfterDays (30) must be at least 30 days after infrequentAccessAfterDays (10)',
    );
    expect(message).toContain(
      'glacierInstantRetrievalAfterDays (30) must be less than snapshotRetentionDays (20)',
    );
  });

  it('refuses lifecycle transitions on an existing bucket', () => {
    expect(
      build({
        createDemoUsersTable: true,
        existingBucketName: 'acme-exports',
        infrequentAccessAfterDays: 60,
      }),
    ).toThrow(/existingBucketName and infrequentAccessAfterDays conflict/);
  });

  it('asks for a users table when none is given', () => {
    expect(build({})).toThrow(/no users table: set usersTableName .* or createDemoUsersTable/);
  });

  it('rejects malformed schedule, time zone, e-mail, sizes and prefix', () => {
    const attempt = build({
      createDemoUsersTable: true,
      scheduleExpression: '0 2 * * *',
      scheduleTimeZone: 'Mars/Olympus',
      alarmEmail: 'nobody',
      memoryMiB: 64,
      exportPrefix: '/leading',
      maxSegmentConcurrency: 41,
    });
    let message = '';
    try {
      attempt();
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toContain('Invalid SessionExport settings (6)');
    expect(message).toContain('maxSegmentConcurrency must be a whole number from 1 to 40 (got 41)');
    expect(message).toContain('scheduleExpression "0 2 * * *" must be cron(...), rate(...) or at(...)');
    expect(message).toContain('scheduleTimeZone "Mars/Olympus" is not an IANA time zone');
    expect(message).toContain('alarmEmail "nobody" is not an e-mail address');
    expect(message).toContain('memoryMiB must be a whole number from 128 to 10240 (got 64)');
    expect(message).toContain('exportPrefix "/leading" must be key segments');
  });
});

describe('a first deploy with -c scheduleEnabled=false (README: before npm run smoke)', () => {
  it('deploys the schedule DISABLED', () => {
    const app = new App({
      context: { ...SKIP_BUNDLING, ...FEATURE_FLAGS, usersTable: 'demo', scheduleEnabled: 'false' },
    });
    const stack = new SessionExportStack(app, 'MoonKeySessionExport', {
      env: ACCOUNT_ENV,
      ...propsFromContext(app.node),
    });
    Template.fromStack(stack).hasResourceProperties('AWS::Scheduler::Schedule', { State: 'DISABLED' });
  });
});

describe('propsFromContext', () => {
  it('turns CLI strings into typed props and usersTable into a table choice', () => {
    const app = new App({
      context: {
        usersTable: 'prod-users',
        memoryMiB: '2048',
        maxSegmentConcurrency: '16',
        reserveConcurrency: 'false',
        scheduleEnabled: 'false',
        jobEnvironment: '{"EXPORT_SCAN_SEGMENTS":"4"}',
        encryptionKey: 'create',
        infrequentAccessAfterDays: '0',
        existingBucketKmsKeyArn: BUCKET_KEY_ARN,
      },
    });
    expect(propsFromContext(app.node)).toEqual({
      usersTableName: 'prod-users',
      memoryMiB: 2048,
      maxSegmentConcurrency: 16,
      reserveConcurrency: false,
      scheduleEnabled: false,
      jobEnvironment: { EXPORT_SCAN_SEGMENTS: '4' },
      encryptionKey: 'create',
      infrequentAccessAfterDays: 0,
      existingBucketKmsKeyArn: BUCKET_KEY_ARN,
    });
    expect(propsFromContext(new App({ context: { usersTable: 'demo' } }).node)).toEqual({
      createDemoUsersTable: true,
    });
  });
});
