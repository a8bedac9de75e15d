/**
 * DynamoDB throttling that lasts longer than the SDK's default retries: the job's scan, through
 * the real SDK and a throttling proxy in front of DynamoDB Local, must wait it out and commit.
 */
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { runViaStateMachine } from '../helpers/run-via-state-machine';
import { scheduledEvent } from '../helpers/scheduled-event';
import { readRecords } from '../helpers/snapshot-reader';
import { startThrottlingProxy, type ThrottlingProxy } from '../helpers/throttling-proxy';

const TABLE = 'users-throttled';
const BASE_TIME = 1_764_115_200;
const THROTTLE_MS = 7_000;

let stack: LocalStack;
let proxy: ThrottlingProxy;
let users: string[];

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  await createUsersTable(stack.dynamodbClient, TABLE);
  users = await seedUsers(stack.dynamodbClient, TABLE, 40);
  proxy = await startThrottlingProxy(stack.dynamodb.endpoint, THROTTLE_MS);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
});

describe('a scan throttled for 7 s', () => {
  it('waits the throttling out with the configured retry budget and commits every user', async () => {
    const outcome = await runViaStateMachine(
      {
        ...stack.env,
        // The job's DynamoDB client finds its endpoint the SDK's way: through the proxy.
        AWS_ENDPOINT_URL_DYNAMODB: proxy.url,
        USERS_TABLE_NAME: TABLE,
        EXPORT_PREFIX: 'throttled',
        EXPORT_SCAN_PAGE_SIZE: '10',
      },
      scheduledEvent('2026-11-26T02:00:00Z'),
      { workBudgetMs: 900_000 },
    );

    expect(outcome.error).toBeUndefined();
    expect(outcome.manifest?.status).toBe('committed');
    expect(outcome.manifest?.counts.users_scanned).toBe(users.length);
    // The throttle was real (several attempts refused), and the scan went on after it.
    expect(proxy.stats.throttled).toBeGreaterThanOrEqual(3);
    expect(proxy.stats.passed).toBeGreaterThan(0);
    const records = await readRecords(stack.s3Client, stack.bucket, 'throttled/sessions/');
    expect(records).toHaveLength(users.flatMap((id) => sessionsFor(id, BASE_TIME)).length);
  });
});
