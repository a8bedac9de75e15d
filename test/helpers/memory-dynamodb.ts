import {
  type AttributeValue,
  type DynamoDBClient,
  ScanCommand,
  type ScanCommandInput,
} from '@aws-sdk/client-dynamodb';

type Item = Record<string, AttributeValue>;

const dynamodbError = (name: string, message = name) => Object.assign(new Error(message), { name });

/**
 * Just enough DynamoDB, in memory, for unit tests of the users-table scan: Scan with Limit,
 * ExclusiveStartKey / LastEvaluatedKey, Segment / TotalSegments and a ProjectionExpression of
 * attribute names. The integration suites scan the same code against DynamoDB Local; this makes
 * one answer go wrong at a time (a throttled page, a page held until the caller aborts).
 *
 * It follows DynamoDB's rules where the scan depends on them: a page that reached `Limit` carries
 * a LastEvaluatedKey even when nothing follows (the next page is then empty), a parallel scan's
 * segments are disjoint and together hold every item, and a projection returns only the named
 * attributes (an item without them comes back empty, not missing).
 */
export class MemoryUsersTable {
  /** Items in scan order; each holds the table's key attribute. */
  readonly items: Item[] = [];
  /** Every Scan's input, in the order sent. */
  readonly scans: ScanCommandInput[] = [];
  /** Return an error to fail a Scan (after it is counted in `scans`); undefined lets it through. */
  fail: (input: ScanCommandInput) => Error | undefined = () => undefined;
  /**
   * Runs before a Scan is answered; the answer waits for the promise it returns (undefined: no
   * wait). The caller's abort signal ends the wait with the SDK's AbortError.
   */
  latency: (input: ScanCommandInput) => Promise<void> | undefined = () => undefined;
  /** Scans being answered right now (held by `latency`). */
  inFlight = 0;
  private throttled = 0;

  readonly client = {
    send: (command: unknown, options?: { abortSignal?: AbortSignal }) =>
      this.send(command, options?.abortSignal),
  } as unknown as DynamoDBClient;

  /** `keyAttribute` is the table's partition key; the user id may live in another attribute. */
  constructor(readonly keyAttribute = 'user_id') {}

  /** Adds `n` users `<prefix>00000`, ... with the id in the key attribute (and `extra` on each). */
  addUsers(n: number, prefix = 'user_', extra: Item = {}): string[] {
    const ids = Array.from(
      { length: n },
      (_, i) => `${prefix}${String(this.items.length + i).padStart(5, '0')}`,
    );
    for (const id of ids) this.items.push({ [this.keyAttribute]: { S: id }, ...extra });
    return ids;
  }

  /** The next `times` Scans fail as DynamoDB fails a Scan over the table's read capacity. */
  throttle(times: number): void {
    this.throttled += times;
  }

  /** The items of a segment in scan order: item i is in segment i mod TotalSegments. */
  segmentItems(segment: number, totalSegments: number): Item[] {
    return this.items.filter((_, i) => i % totalSegments === segment);
  }

  private async send(command: unknown, signal: AbortSignal | undefined): Promise<unknown> {
    if (!(command instanceof ScanCommand))
      throw new Error(`MemoryUsersTable answers Scan only, not ${String(command)}`);
    const input = command.input;
    this.scans.push(input);
    const aborted = () => dynamodbError('AbortError', 'Request aborted');
    if (signal?.aborted) throw aborted();
    const wait = this.latency(input);
    if (wait) {
      this.inFlight++;
      try {
        await new Promise<void>((resolve, reject) => {
          const onAbort = () => reject(aborted());
          signal?.addEventListener('abort', onAbort, { once: true });
          wait.then(resolve, reject).finally(() => signal?.removeEventListener('abort', onAbort));
        });
      } finally {
        this.inFlight--;
      }
    }
    if (this.throttled > 0) {
      this.throttled--;
      throw dynamodbError(
        'ProvisionedThroughputExceededException',
        'The level of configured provisioned throughput for the table was exceeded.',
      );
    }
    const failure = this.fail(input);
    if (failure) throw failure;
    return this.scan(input);
  }

  private scan(input: ScanCommandInput): unknown {
    if ((input.Segment === undefined) !== (input.TotalSegments === undefined)) {
      throw dynamodbError('ValidationException', 'Segment and TotalSegments go together');
    }
    const items =
      input.TotalSegments === undefined
        ? this.items
        : this.segmentItems(input.Segment as number, input.TotalSegments);
    let start = 0;
    if (input.ExclusiveStartKey !== undefined) {
      const after = input.ExclusiveStartKey[this.keyAttribute]?.S;
      const at = items.findIndex((item) => item[this.keyAttribute]?.S === after);
      if (at < 0) throw dynamodbError('ValidationException', 'The provided starting key is invalid');
      start = at + 1;
    }
    const limit = input.Limit ?? Number.POSITIVE_INFINITY;
    const page = items.slice(start, start + limit);
    const last = page.at(-1);
    return {
      Items: page.map((item) => this.project(item, input)),
      Count: page.length,
      ScannedCount: page.length,
      ...(page.length === limit && last
        ? { LastEvaluatedKey: { [this.keyAttribute]: last[this.keyAttribute] } }
        : {}),
    };
  }

  private project(item: Item, input: ScanCommandInput): Item {
    if (input.ProjectionExpression === undefined) return { ...item };
    const names = input.ProjectionExpression.split(',').map((part) => {
      const name = part.trim();
      return name.startsWith('#') ? (input.ExpressionAttributeNames?.[name] ?? name) : name;
    });
    return Object.fromEntries(
      names.filter((name) => name in item).map((name) => [name, item[name] as AttributeValue]),
    );
  }
}
