import {
  type AttributeValue,
  type DynamoDBClient,
  ScanCommand,
  type ScanCommandOutput,
} from '@aws-sdk/client-dynamodb';
import { ScanUsersError } from './errors';

/**
 * A resumable piece of the users table: one parallel-scan segment and where to continue in it.
 * A later Step Functions orchestrator hands slices to separate invocations; the single-invocation
 * handler walks all segments of a plan in one process. `cursor: undefined` means "from the start".
 */
export interface ScanSlice {
  readonly segment: number;
  readonly totalSegments: number;
  readonly cursor: Record<string, AttributeValue> | undefined;
}

export interface UserPage {
  readonly userIds: string[];
  /** Items whose id attribute is missing, not a string, or empty: counted, never fatal. */
  readonly unusable: number;
  /** Where the scan goes on after this page; `undefined` when the segment is finished. */
  readonly nextCursor: Record<string, AttributeValue> | undefined;
}

export interface ScanUsersOptions {
  readonly tableName: string;
  readonly idAttribute: string;
  readonly pageSize: number;
  readonly signal?: AbortSignal;
}

/**
 * Yields one page at a time and only reads the next page when the consumer asks for it, so a
 * consumer that awaits before pulling keeps the scan from running ahead of the API calls.
 * Only the id attribute is projected: the job never reads (or pays RCUs to move) the rest.
 */
export async function* scanUsers(
  client: DynamoDBClient,
  slice: ScanSlice,
  options: ScanUsersOptions,
): AsyncGenerator<UserPage> {
  let cursor = slice.cursor;
  do {
    let page: ScanCommandOutput;
    try {
      page = await client.send(
        new ScanCommand({
          TableName: options.tableName,
          ProjectionExpression: '#id',
          ExpressionAttributeNames: { '#id': options.idAttribute },
          Limit: options.pageSize,
          ExclusiveStartKey: cursor,
          ...(slice.totalSegments > 1 ? { Segment: slice.segment, TotalSegments: slice.totalSegments } : {}),
        }),
        { abortSignal: options.signal },
      );
    } catch (error) {
      throw new ScanUsersError(
        `Scanning users table ${options.tableName} (segment ${slice.segment + 1}/${slice.totalSegments}) failed: ${(error as Error).message}`,
        { cause: error },
      );
    }
    const userIds: string[] = [];
    let unusable = 0;
    for (const item of page.Items ?? []) {
      const id = item[options.idAttribute]?.S;
      if (id === undefined || id === '') unusable++;
      else userIds.push(id);
    }
    cursor = page.LastEvaluatedKey;
    yield { userIds, unusable, nextCursor: cursor };
  } while (cursor !== undefined);
}
