import { ScanUsersError } from '../../../lambda/core/errors';
import { type ScanPosition, scanUsers, type UserPage } from '../../../lambda/run/scan-users';
import { gate } from '../../helpers/gate';
import { MemoryUsersTable } from '../../helpers/memory-dynamodb';

const whole: ScanPosition = { segment: 0, totalSegments: 1, cursor: undefined };
const options = { tableName: 'users', idAttribute: 'user_id', pageSize: 10 };

async function allPages(table: MemoryUsersTable, slice: ScanPosition, opts = options): Promise<UserPage[]> {
  const pages: UserPage[] = [];
  for await (const page of scanUsers(table.client, slice, opts)) pages.push(page);
  return pages;
}

describe('scanUsers: pages', () => {
  it('reads the table page by page, each from where the last stopped, until no key is left', async () => {
    const table = new MemoryUsersTable();
    const ids = table.addUsers(25);

    const pages = await allPages(table, whole);

    expect(pages.map((p) => p.userIds.length)).toEqual([10, 10, 5]);
    expect(pages.flatMap((p) => p.userIds)).toEqual(ids);
    expect(table.scans.map((s) => s.ExclusiveStartKey)).toEqual([
      undefined,
      { user_id: { S: 'user_00009' } },
      { user_id: { S: 'user_00019' } },
    ]);
    expect(pages.map((p) => p.nextCursor)).toEqual([
      { user_id: { S: 'user_00009' } },
      { user_id: { S: 'user_00019' } },
      undefined,
    ]);
  });

  it('ends with the empty page DynamoDB answers after a full last page', async () => {
    const table = new MemoryUsersTable();
    const ids = table.addUsers(20);

    const pages = await allPages(table, whole);

    expect(pages.map((p) => p.userIds.length)).toEqual([10, 10, 0]);
    expect(pages.flatMap((p) => p.userIds)).toEqual(ids);
    expect(pages.at(-1)?.nextCursor).toBeUndefined();
  });

  it('asks for the page size, projects only the id attribute of the named table', async () => {
    const table = new MemoryUsersTable('pk');
    table.addUsers(3, 'key_', { uid: { S: 'u' }, email: { S: 'someone@example.com' } });

    await allPages(table, whole, { tableName: 'moonkey-users', idAttribute: 'uid', pageSize: 7 });

    expect(table.scans).toEqual([
      {
        TableName: 'moonkey-users',
        ProjectionExpression: '#id',
        ExpressionAttributeNames: { '#id': 'uid' },
        Limit: 7,
        ExclusiveStartKey: undefined,
      },
    ]);
  });

  it('takes the user id from the configured attribute, not the table key', async () => {
    const table = new MemoryUsersTable('pk');
    table.items.push({ pk: { S: 'k1' }, uid: { S: 'alice' } }, { pk: { S: 'k2' }, uid: { S: 'bob' } });

    const pages = await allPages(table, whole, { ...options, idAttribute: 'uid' });

    expect(pages.flatMap((p) => p.userIds)).toEqual(['alice', 'bob']);
    expect(pages[0]?.unusable).toBe(0);
  });

  it('resumes a segment from the cursor a previous Work stopped at', async () => {
    const table = new MemoryUsersTable();
    const ids = table.addUsers(25);

    const pages = await allPages(table, { ...whole, cursor: { user_id: { S: 'user_00014' } } });

    expect(pages.flatMap((p) => p.userIds)).toEqual(ids.slice(15));
    expect(table.scans[0]?.ExclusiveStartKey).toEqual({ user_id: { S: 'user_00014' } });
  });
});

describe('scanUsers: segments', () => {
  it.each([2, 3])(
    'scans its own segment of a parallel scan in %d segments; the segments together hold every user once',
    async (totalSegments) => {
      const table = new MemoryUsersTable();
      const ids = table.addUsers(31);
      const segments = [...Array(totalSegments).keys()];

      const pages = await Promise.all(
        segments.map((segment) => allPages(table, { segment, totalSegments, cursor: undefined })),
      );

      const bySegment = pages.map((p) => p.flatMap((page) => page.userIds));
      for (const [segment, users] of bySegment.entries()) {
        expect(users).toEqual(table.segmentItems(segment, totalSegments).map((item) => item.user_id?.S));
      }
      expect(bySegment.flat().sort()).toEqual(ids);
      expect(new Set(table.scans.map((s) => `${s.Segment}/${s.TotalSegments}`))).toEqual(
        new Set(segments.map((segment) => `${segment}/${totalSegments}`)),
      );
    },
  );

  it('sends no Segment for a scan of one segment', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(2);

    await allPages(table, whole);

    expect(table.scans[0]).not.toHaveProperty('Segment');
    expect(table.scans[0]).not.toHaveProperty('TotalSegments');
  });
});

describe('scanUsers: items without a usable id', () => {
  it('counts items whose id is missing, empty or not a string in the page they came in, and keeps the rest', async () => {
    const table = new MemoryUsersTable('pk');
    table.items.push(
      { pk: { S: 'k1' }, user_id: { S: 'alice' } },
      { pk: { S: 'k2' } },
      { pk: { S: 'k3' }, user_id: { S: '' } },
      { pk: { S: 'k4' }, user_id: { N: '42' } },
      { pk: { S: 'k5' }, user_id: { S: 'bob' } },
    );

    const pages = await allPages(table, whole, { ...options, pageSize: 3 });

    expect(pages.map((p) => ({ userIds: p.userIds, unusable: p.unusable }))).toEqual([
      { userIds: ['alice'], unusable: 2 },
      { userIds: ['bob'], unusable: 1 },
    ]);
  });
});

describe('scanUsers: reading ahead', () => {
  it('has the next page on its way while the consumer works, and reads no further than that', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(50);
    const pages = scanUsers(table.client, whole, options);

    await pages.next();
    // The consumer is busy with page 1: page 2 was asked for, page 3 was not.
    await new Promise((resolve) => setImmediate(resolve));
    expect(table.scans).toHaveLength(2);

    await pages.next();
    await new Promise((resolve) => setImmediate(resolve));
    expect(table.scans).toHaveLength(3);
    await pages.return(undefined);
  });

  it('asks for nothing after the last page', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(5);

    await allPages(table, whole);
    await new Promise((resolve) => setImmediate(resolve));

    expect(table.scans).toHaveLength(1);
  });

  it('lets a consumer stop early although the page read ahead fails', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(30);
    table.fail = (input) => (input.ExclusiveStartKey ? new Error('connection reset') : undefined);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const pages = scanUsers(table.client, whole, options);
      const first = await pages.next();
      await pages.return(undefined);
      await new Promise((resolve) => setImmediate(resolve));

      expect((first.value as UserPage).userIds).toHaveLength(10);
      expect(table.scans).toHaveLength(2);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('scanUsers: failures', () => {
  it('wraps a throttled Scan in ScanUsersError naming the table and segment, the cause kept', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(5);
    table.throttle(1);

    const error = await allPages(table, { segment: 2, totalSegments: 4, cursor: undefined }).catch(
      (e: unknown) => e,
    );

    expect(error).toBeInstanceOf(ScanUsersError);
    expect((error as Error).message).toBe(
      'Scanning users table users (segment 3/4) failed: The level of configured provisioned throughput for the table was exceeded.',
    );
    expect(((error as Error).cause as Error).name).toBe('ProvisionedThroughputExceededException');
  });

  it('hands the pages read before a failing one to the consumer, then the error', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(25);
    let scans = 0;
    table.fail = () => (++scans === 2 ? new Error('socket hang up') : undefined);
    const seen: string[][] = [];

    const error = await (async () => {
      for await (const page of scanUsers(table.client, whole, options)) seen.push(page.userIds);
    })().catch((e: unknown) => e);

    expect(seen).toHaveLength(1);
    expect(error).toBeInstanceOf(ScanUsersError);
    expect((error as Error).message).toContain('socket hang up');
  });

  it('passes the abort signal to the Scan, so an abort ends a page in flight', async () => {
    const table = new MemoryUsersTable();
    table.addUsers(5);
    const held = gate();
    table.latency = () => held.promise;
    const abort = new AbortController();
    const pages = scanUsers(table.client, whole, { ...options, signal: abort.signal });

    const next = pages.next().catch((e: unknown) => e);
    await new Promise((resolve) => setImmediate(resolve));
    expect(table.inFlight).toBe(1);
    abort.abort();
    const error = await next;

    expect(error).toBeInstanceOf(ScanUsersError);
    expect(((error as Error).cause as Error).name).toBe('AbortError');
    held.open();
  });
});
