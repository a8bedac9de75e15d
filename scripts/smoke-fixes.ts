/**
 * What to fix, for each way a first-deploy check fails: the `— fix: …` half of a FAIL line. Kept
 * apart from the steps so every message an operator may read is in one place. None of them holds
 * a secret value: the script never reads the API key (the secret's resource policy lets only the
 * function read it), and the errors it reports are the job's, which never carry the key.
 */

/** The deployed resources a fix names, as far as they are known (the stack's outputs). */
export interface FixContext {
  readonly stackName: string;
  readonly region: string | undefined;
  readonly secretArn?: string | undefined;
  readonly functionName?: string | undefined;
  readonly bucket?: string | undefined;
  readonly prefix?: string | undefined;
  readonly database?: string | undefined;
  readonly workGroup?: string | undefined;
}

const errorName = (error: unknown) => (error as { name?: unknown } | null)?.name;
const errorMessage = (error: unknown) => String((error as { message?: unknown } | null)?.message ?? error);

/**
 * The fix for an AWS call that threw, when the cause is the caller's setup (credentials, region,
 * permissions) rather than the stack; `action` is the IAM action the call needs.
 */
export function awsCallFix(error: unknown, action: string): string {
  const name = String(errorName(error));
  const message = errorMessage(error);
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return 'no AWS credentials: set AWS_PROFILE (or run aws sso login, or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) for the account of the stack';
  }
  if (/ExpiredToken|TokenRefreshRequired/.test(name) || /token.*expired/i.test(message)) {
    return 'your AWS session expired: sign in again (aws sso login) and rerun';
  }
  if (/Region is missing/i.test(message)) return 'pass --region <region> or set AWS_REGION';
  if (/ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|ECONNRESET/.test(message)) {
    return 'AWS cannot be reached from here: check the network, a proxy (HTTPS_PROXY) and that --region names a region';
  }
  if (/AccessDenied|UnauthorizedOperation|NotAuthorized/i.test(name) || /not authorized/i.test(message)) {
    return `your credentials need ${action}`;
  }
  return `the call ${action} failed (${name}); rerun, and if it persists check the service's status in the region`;
}

/** The fix for an export execution that ended other than SUCCEEDED, by the job's error name. */
export function executionFix(
  status: string,
  error: string | undefined,
  message: string | undefined,
  executionArn: string,
  ctx: FixContext,
): string {
  const secret = ctx.secretArn ?? `<the ${ctx.stackName} output ApiKeySecretArn>`;
  const logs = ctx.functionName ? `/aws/lambda/${ctx.functionName}` : "the function's log group";
  const manifests =
    ctx.bucket && ctx.prefix ? `s3://${ctx.bucket}/${ctx.prefix}/manifests/` : 'the manifests/ prefix';
  if (status === 'ABORTED') return 'someone stopped the execution; rerun npm run smoke';
  if (status === 'TIMED_OUT' || error === 'States.Timeout') {
    return 'the run outlasted its execution timeout (prop runTimeoutHours); an earlier run may have held the queue: let it finish, then rerun';
  }
  switch (error) {
    case 'SecretFetchError':
      return /holds no API key/.test(message ?? '')
        ? `set the API key: aws secretsmanager put-secret-value --secret-id ${secret} --secret-string '{"apiKey":"<your key>"}'`
        : `the function cannot read ${secret}: check that the secret exists, its resource policy, and apiKeySecretKmsKeyArn if a customer-managed key encrypts it`;
    case 'ApiAuthError':
      return `MoonKey refused the API key: put this app's key in ${secret}, and check the prop apiUrl`;
    case 'TooManyFailedUsersError':
    case 'TooManyRejectedItemsError':
      return `too many users failed: their errors are in the failed manifest under ${manifests}; check the prop apiUrl and the API's status`;
    case 'ScanUsersError':
      return 'the function cannot scan the users table: check the props usersTableName and userIdAttribute';
    case 'ConfigError':
      return 'a job setting is invalid (the message names it): fix it in jobEnvironment or the props and redeploy';
    case 'InvalidEventError':
    case 'InvalidPhaseInputError':
      return 'the deployed state machine refused the input of this version of the scripts: deploy this version of the project';
    case 'SnapshotWriteError':
      return `the function cannot write the bucket: check existingBucketName / existingBucketKmsKeyArn, and ${logs}`;
  }
  if (error && /^(Api|RetriesExhausted|ResponseTooLarge|MalformedResponse)/.test(error)) {
    return "calls to MoonKey failed: check the prop apiUrl and the API's status, then rerun";
  }
  if (error && (/^Lambda\./.test(error) || error === 'States.TaskFailed')) {
    return `the function could not run: read ${logs} (in an account with a small concurrency quota deploy with -c reserveConcurrency=false)`;
  }
  return `read the execution's history (aws stepfunctions get-execution-history --execution-arn ${executionArn}) and ${logs}`;
}

/** The fix for an Athena query that FAILED, by the known pitfalls of views and tables declared in Glue. */
export function athenaFix(reason: string, ctx: FixContext): string {
  const db = ctx.database ?? '<the Glue database>';
  if (/is stale/i.test(reason)) {
    return `the view ${db}.sessions is stale: its Presto definition's column types (varchar, bigint, row(...), array(...)) or tables no longer match the tables'; redeploy this version of the stack`;
  }
  if (/HIVE_METASTORE_ERROR/.test(reason)) {
    return `a Glue table in ${db} has no SerDe info or a malformed storage descriptor: redeploy this version of the stack`;
  }
  if (/TABLE_NOT_FOUND|SCHEMA_NOT_FOUND|does not exist/i.test(reason)) {
    return `a table or the view is missing from the Glue database ${db}: redeploy the stack`;
  }
  if (/Access ?Denied|not authorized|Insufficient permissions|KMS/i.test(reason)) {
    return `your credentials need athena:StartQueryExecution on ${ctx.workGroup ?? 'the workgroup'}, glue:GetTable on ${db}, s3:GetObject on s3://${ctx.bucket ?? '<bucket>'}/${ctx.prefix ?? '<prefix>'}/* (kms:Decrypt on its key if it has one) and write access to the workgroup's results bucket`;
  }
  if (/bytes scanned|BytesScannedCutoff/i.test(reason)) {
    return 'the query hit the workgroup cutoff: raise the prop athenaBytesScannedCutoff';
  }
  if (/HIVE_BAD_DATA|HIVE_CURSOR_ERROR|JSON/i.test(reason)) {
    return `a file under ${ctx.prefix ?? '<prefix>'}/sessions/ does not read as the table's columns: compare it with lambda/snapshot/athena-columns.ts`;
  }
  return `run the query in the Athena console (workgroup ${ctx.workGroup ?? '<workgroup>'}) for the full error`;
}
