import {
  BatchWriteItemCommand,
  type BatchWriteItemCommandOutput,
  CreateTableCommand,
  DeleteTableCommand,
  DescribeTableCommand,
  type DynamoDBClient,
  type WriteRequest,
} from '@aws-sdk/client-dynamodb';
import pLimit from 'p-limit';
import { DEFAULT_USER_ID_ATTRIBUTE } from '../lambda/core/facts';
import { userIdFor } from './fake-sessions';

/**
 * A users table like the one teams already have: keyed by `keyAttribute`, with the user id in
 * `idAttribute` (the same attribute when the table is keyed by user id) and a little other data
 * the export must not read.
 */
export async function createUsersTable(
  client: DynamoDBClient,
  tableName: string,
  keyAttribute = DEFAULT_USER_ID_ATTRIBUTE,
): Promise<void> {
  await client.send(new DeleteTableCommand({ TableName: tableName })).catch(() => undefined);
  await client.send(
    new CreateTableCommand({
      TableName: tableName,
      AttributeDefinitions: [{ AttributeName: keyAttribute, AttributeType: 'S' }],
      KeySchema: [{ AttributeName: keyAttribute, KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  for (let i = 0; i < 50; i++) {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (out.Table?.TableStatus === 'ACTIVE') return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Writes items in batches of 25 (BatchWriteItem's limit), retrying unprocessed items. */
export async function putUserItems(
  client: DynamoDBClient,
  tableName: string,
  items: WriteRequest['PutRequest'][],
  parallelism = 8,
): Promise<void> {
  const batchWrites = pLimit(parallelism);
  const batches: WriteRequest[][] = [];
  for (let i = 0; i < items.length; i += 25) {
    batches.push(items.slice(i, i + 25).map((PutRequest) => ({ PutRequest })));
  }
  await Promise.all(
    batches.map((batch) =>
      batchWrites(async () => {
        let pending: WriteRequest[] | undefined = batch;
        for (let attempt = 0; pending && pending.length > 0; attempt++) {
          if (attempt > 10) throw new Error(`BatchWriteItem left ${pending.length} items unprocessed`);
          const out: BatchWriteItemCommandOutput = await client.send(
            new BatchWriteItemCommand({ RequestItems: { [tableName]: pending } }),
          );
          pending = out.UnprocessedItems?.[tableName];
        }
      }),
    ),
  );
}

/** Seeds users `userIdFor(0..count-1)` into a table keyed by the id attribute. */
export async function seedUsers(
  client: DynamoDBClient,
  tableName: string,
  count: number,
  idAttribute = DEFAULT_USER_ID_ATTRIBUTE,
): Promise<string[]> {
  const ids = Array.from({ length: count }, (_, i) => userIdFor(i));
  const chunk = 5000;
  for (let i = 0; i < ids.length; i += chunk) {
    await putUserItems(
      client,
      tableName,
      ids.slice(i, i + chunk).map((id, j) => ({
        Item: {
          [idAttribute]: { S: id },
          email: { S: `user${i + j}@example.com` },
          plan: { S: (i + j) % 3 === 0 ? 'enterprise' : 'free' },
        },
      })),
    );
  }
  return ids;
}
