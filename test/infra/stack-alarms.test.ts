/**
 * Template assertions on the stack with its defaults: the alarms and their topic.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import type { Statement } from '../helpers/stack-template';
import { ACCOUNT_ENV, synthStack } from '../helpers/synth-stack';

describe('SessionExportStack with defaults: alarms', () => {
  let template: Template;

  beforeAll(() => {
    // Prepare / Act: cdk-nag and the Control Tower controls run during this synth and throw on any finding.
    template = synthStack({ createDemoUsersTable: true });
  });

  describe('alarms', () => {
    const alarmNamed = (prefix: string) =>
      Object.entries(template.findResources('AWS::CloudWatch::Alarm')).find(([id]) =>
        id.startsWith(prefix),
      )?.[1].Properties;

    it('alarm on failed, timed-out and aborted runs, failed launches, failed users, unpublished completion events and dead letters, all to the SNS topic', () => {
      const onRuns = (prefix: string, metric: string) =>
        expect(alarmNamed(prefix)).toMatchObject({
          MetricName: metric,
          Namespace: 'AWS/States',
          Dimensions: [
            { Name: 'StateMachineArn', Value: { Ref: expect.stringMatching(/^RunStateMachine/) } },
          ],
          Statistic: 'Sum',
          Threshold: 0,
          ComparisonOperator: 'GreaterThanThreshold',
          TreatMissingData: 'notBreaching',
        });
      onRuns('AlarmsExecutionsFailed', 'ExecutionsFailed');
      onRuns('AlarmsExecutionsTimedOut', 'ExecutionsTimedOut');
      onRuns('AlarmsExecutionsAborted', 'ExecutionsAborted');
      expect(alarmNamed('AlarmsLaunchFailed')).toMatchObject({
        MetricName: 'ExecutionsFailed',
        Dimensions: [
          { Name: 'StateMachineArn', Value: { Ref: expect.stringMatching(/^LauncherStateMachine/) } },
        ],
      });
      expect(Object.keys(template.findResources('AWS::CloudWatch::Alarm'))).toHaveLength(8);
      expect(alarmNamed('AlarmsCompletionEventUnpublished')).toMatchObject({
        MetricName: 'CompletionEventUnpublished',
        Namespace: 'MoonKeySessionExport',
        Dimensions: [{ Name: 'service', Value: 'moonkey-session-export' }],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
      expect(alarmNamed('AlarmsFailedUsers')).toMatchObject({
        MetricName: 'UsersFailed',
        Namespace: 'MoonKeySessionExport',
        Dimensions: [{ Name: 'service', Value: 'moonkey-session-export' }],
        Threshold: 0,
        ComparisonOperator: 'GreaterThanThreshold',
      });
      expect(alarmNamed('AlarmsDeadLetters')).toMatchObject({
        MetricName: 'ApproximateNumberOfMessagesVisible',
      });
      for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
        expect(alarm.Properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^AlarmsTopic/) }]);
      }
    });

    it('alarm when no scheduled snapshot committed for 26 hours, missing data breaching (audits do not count)', () => {
      expect(alarmNamed('AlarmsNoRecentSnapshot')).toMatchObject({
        MetricName: 'SnapshotCommitted',
        Namespace: 'MoonKeySessionExport',
        Dimensions: [
          { Name: 'service', Value: 'moonkey-session-export' },
          { Name: 'trigger', Value: 'scheduled' },
        ],
        Statistic: 'Sum',
        Period: 3600,
        EvaluationPeriods: 26,
        DatapointsToAlarm: 26,
        Threshold: 1,
        ComparisonOperator: 'LessThanThreshold',
        TreatMissingData: 'breaching',
      });
    });

    it('lets CloudWatch alarms of this account publish to the topic, which still refuses non-TLS', () => {
      const policies = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
      expect(policies).toHaveLength(1);
      const statements = policies[0]?.Properties.PolicyDocument.Statement as Statement[];
      expect(statements).toEqual(
        expect.arrayContaining([
          expect.objectContaining({
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: { Ref: expect.stringMatching(/^AlarmsTopic/) },
            Condition: {
              StringEquals: { 'aws:SourceAccount': ACCOUNT_ENV.account },
              ArnLike: {
                'aws:SourceArn': {
                  'Fn::Join': [
                    '',
                    [
                      'arn:',
                      { Ref: 'AWS::Partition' },
                      `:cloudwatch:${ACCOUNT_ENV.region}:${ACCOUNT_ENV.account}:alarm:*`,
                    ],
                  ],
                },
              },
            },
          }),
          expect.objectContaining({
            Effect: 'Deny',
            Action: 'sns:Publish',
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      );
    });

    it('has no e-mail subscription unless asked', () => {
      template.resourceCountIs('AWS::SNS::Subscription', 0);
    });
  });
});
