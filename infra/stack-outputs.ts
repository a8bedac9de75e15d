/** The stack's id in the CDK app (infra/app.ts); the scripts find the deployed stack by it. */
export const STACK_NAME = 'MoonKeySessionExport';

/**
 * Names of the stack outputs; `npm run audit` finds the state machine by `StateMachineArn`,
 * `npm run smoke` everything it checks by these.
 */
export const OUTPUTS = {
  stateMachineArn: 'StateMachineArn',
  functionName: 'FunctionName',
  bucketName: 'ExportBucketName',
  exportPrefix: 'ExportPrefix',
  secretArn: 'ApiKeySecretArn',
  alarmTopicArn: 'AlarmTopicArn',
  failureQueueUrl: 'FailureQueueUrl',
  glueDatabase: 'GlueDatabaseName',
  athenaWorkGroup: 'AthenaWorkGroup',
  analystPolicyArn: 'AnalystPolicyArn',
  securityPolicyArn: 'SecurityPolicyArn',
  analystWorkGroup: 'AnalystAthenaWorkGroup',
  usersTableName: 'UsersTableName',
  userIdAttribute: 'UserIdAttribute',
} as const;
