import {
  type AttributeValue,
  type DynamoDBClient,
  ScanCommand,
  type ScanCommandOutput,
} from '@aws-sdk/client-dynamodb';
import { ScanUsersError } from '../core/errors';

/**
 * A resumable piece of the users table: one parallel-scan segment and where to continue in it.
 * Each Work invocation of the state machine walks one segment from its cursor and hands the
 * cursor it stopped at to the next Work of that segment. `cursor: undefined` means "from the start".
 */
export interface ScanPosition {
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
 * Yields one page at a time, reading one page ahead: while the consumer works through a page,
 * the next one is already on its way, so a fast consumer never waits a whole Scan round trip at
 * a page boundary. It never reads further than that: a consumer that awaits before pulling
 * keeps the scan from running ahead of the API calls by more than one page.
 * Only the id attribute is projected: the job never reads (or pays RCUs to move) the rest.
 */
export async function* scanUsers(
  client: DynamoDBClient,
  position: ScanPosition,
  options: ScanUsersOptions,
): AsyncGenerator<UserPage> {
  const ahead = (cursor: ScanPosition['cursor']) => {
    const page = readPage(client, position, cursor, options);
    // Marked handled at once: it may fail while the consumer is busy (it sees the error when it
    // pulls) or after the consumer stopped early (nobody will ever look).
    page.catch(() => undefined);
    return page;
  };
  let next: Promise<UserPage> | undefined = ahead(position.cursor);
  while (next !== undefined) {
    const page: UserPage = await next;
    next = page.nextCursor === undefined ? undefined : ahead(page.nextCursor);
    yield page;
  }
}

async function readPage(
  client: DynamoDBClient,
  position: ScanPosition,
  cursor: Record<string, AttributeValue> | undefined,
  options: ScanUsersOptions,
): Promise<UserPage> {
  let page: ScanCommandOutput;
  try {
    page = await client.send(
      new ScanCommand({
        TableName: options.tableName,
        ProjectionExpression: '#id',
        ExpressionAttributeNames: { '#id': options.idAttribute },
        Limit: options.pageSize,
        ExclusiveStartKey: cursor,
        ...(position.totalSegments > 1
          ? { Segment: position.segment, TotalSegments: position.totalSegments }
          : {}),
      }),
      { abortSignal: options.signal },
    );
  } catch (error) {
    throw new ScanUsersError(
      `Scanning users table ${options.tableName} (segment ${position.segment + 1}/${position.totalSegments}) failed: ${(error as Error).message}`,
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
  return { userIds, unusable, nextCursor: page.LastEvaluatedKey };
}
