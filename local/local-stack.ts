import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { type DynamoDbLocal, LOCAL_CREDENTIALS, LOCAL_REGION, startDynamoDbLocal } from './dynamodb-local';
import { type FakeApi, type FakeApiSettings, startFakeMoonKeyApi } from './fake-moonkey-api';
import { type S3Server, startS3Server } from './s3-server';

export interface LocalStack {
  readonly dynamodb: DynamoDbLocal;
  readonly s3: S3Server;
  readonly api: FakeApi;
  readonly bucket: string;
  /** The environment the job needs to run against this stack (merge a table name and prefix in). */
  readonly env: Record<string, string>;
  readonly dynamodbClient: DynamoDBClient;
  readonly s3Client: S3Client;
  stop(): Promise<void>;
}

/** A DynamoDB client for DynamoDB Local (letters-and-digits credentials, as version 3 requires). */
export function localDynamoDbClient(endpoint: string): DynamoDBClient {
  return new DynamoDBClient({ region: LOCAL_REGION, credentials: LOCAL_CREDENTIALS, endpoint });
}

/** An S3 client for a local S3 server: path-style, and checksums only where S3 requires them. */
export function localS3Client(endpoint: string): S3Client {
  return new S3Client({
    region: LOCAL_REGION,
    credentials: LOCAL_CREDENTIALS,
    endpoint,
    forcePathStyle: true,
  });
}

/**
 * The three real parts the job talks to locally, started together on free ports: DynamoDB Local
 * (the AWS jar), an S3-compatible server (fauxqs) and our fake MoonKey API. Tests, `npm start`
 * and the benchmark all use this one function, so they exercise the same wiring.
 * The returned `env` sets the AWS SDK's own variables, so the job's code has no local mode.
 */
export async function startLocalStack(
  options: { api?: Partial<FakeApiSettings>; bucket?: string; dynamodbPath?: string } = {},
): Promise<LocalStack> {
  const started = await Promise.allSettled([
    startDynamoDbLocal({ dbPath: options.dynamodbPath }),
    startS3Server(),
    startFakeMoonKeyApi(options.api),
  ] as const);
  const [dynamodbStart, s3Start, apiStart] = started;
  if (
    dynamodbStart.status === 'rejected' ||
    s3Start.status === 'rejected' ||
    apiStart.status === 'rejected'
  ) {
    // Stop whatever did start: a Java process left behind outlives the test run that started it.
    await Promise.allSettled([
      dynamodbStart.status === 'fulfilled' ? dynamodbStart.value.stop() : undefined,
      s3Start.status === 'fulfilled' ? s3Start.value.stop() : undefined,
      apiStart.status === 'fulfilled' ? apiStart.value.close() : undefined,
    ]);
    const failure = started.find((r) => r.status === 'rejected');
    throw failure?.reason;
  }
  const [dynamodb, s3, api] = [dynamodbStart.value, s3Start.value, apiStart.value];
  const bucket = options.bucket ?? 'moonkey-exports-local';
  const dynamodbClient = localDynamoDbClient(dynamodb.endpoint);
  const s3Client = localS3Client(s3.endpoint);
  await s3Client.send(new CreateBucketCommand({ Bucket: bucket }));
  return {
    dynamodb,
    s3,
    api,
    bucket,
    env: {
      AWS_REGION: LOCAL_REGION,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
      AWS_ENDPOINT_URL_S3: s3.endpoint,
      S3_FORCE_PATH_STYLE: 'true',
      EXPORT_BUCKET_NAME: bucket,
      MOONKEY_API_URL: api.url,
      MOONKEY_API_KEY: api.settings.apiKey,
      METRICS_ENABLED: 'false',
    },
    dynamodbClient,
    s3Client,
    async stop() {
      dynamodbClient.destroy();
      s3Client.destroy();
      await Promise.all([api.close(), dynamodb.stop(), s3.stop()]);
    },
  };
}
