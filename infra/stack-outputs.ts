/** Names of the stack outputs; `npm run audit` finds the function by `FunctionName`. */
export const OUTPUTS = {
  functionName: 'FunctionName',
  bucketName: 'ExportBucketName',
  exportPrefix: 'ExportPrefix',
  secretArn: 'ApiKeySecretArn',
  alarmTopicArn: 'AlarmTopicArn',
  failureQueueUrl: 'FailureQueueUrl',
  glueDatabase: 'GlueDatabaseName',
  athenaWorkGroup: 'AthenaWorkGroup',
} as const;
