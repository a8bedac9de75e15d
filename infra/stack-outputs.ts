/** Names of the stack outputs; `npm run audit` finds the state machine by `StateMachineArn`. */
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
} as const;
