import 'aws-sdk-client-mock-jest';
import { Readable } from 'node:stream';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  type GetQueryExecutionCommandOutput,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import {
  CloudFormationClient,
  CloudFormationServiceException,
  DescribeStacksCommand,
} from '@aws-sdk/client-cloudformation';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import {
  DescribeExecutionCommand,
  GetExecutionHistoryCommand,
  SFNClient,
  StartExecutionCommand,
} from '@aws-sdk/client-sfn';
import { sdkStreamMixin } from '@smithy/core/serde';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import type { Manifest } from '../../../lambda/snapshot/manifest';
import { AUDIT_REASON, runSmoke, type SmokeClients, type SmokeOptions } from '../../../scripts/smoke-run';
import * as recorded from '../../fixtures/smoke/deployed-stack';

const credentials = { accessKeyId: 'AKIDSMOKETEST', secretAccessKey: 'smoke-test-secret' };
const config = { region: 'eu-west-1', credentials };

const OPTIONS: SmokeOptions = {
  stackName: 'MoonKeySessionExport',
  region: 'eu-west-1',
  users: { kind: 'count', count: 3 },
  timeoutMs: 600_000,
  executionPollMs: 5_000,
  queryPollMs: 1_000,
};

interface Mocks {
  cfn: AwsClientStub<CloudFormationClient>;
  dynamodb: AwsClientStub<DynamoDBClient>;
  sfn: AwsClientStub<SFNClient>;
  s3: AwsClientStub<S3Client>;
  athena: AwsClientStub<AthenaClient>;
}

const manifestBody = (manifest: Manifest) =>
  sdkStreamMixin(Readable.from([Buffer.from(`${JSON.stringify(manifest)}\n`)]));

/** Which of the two queries an Athena call is about, by the relation its SQL reads (a view, or a `_raw` table). */
const queryIdFor = (sql: string | undefined) =>
  sql?.includes('_raw"') ? recorded.RAW_QUERY_ID : recorded.VIEW_QUERY_ID;

/**
 * A deployed stack whose every call answers as on a healthy first deploy: one poll while the
 * execution runs, one while each query runs. Each test overrides the call it is about.
 */
function healthyStack(clients: SmokeClients): Mocks {
  const mocks: Mocks = {
    cfn: mockClient(clients.cloudFormation),
    dynamodb: mockClient(clients.dynamodb),
    sfn: mockClient(clients.sfn),
    s3: mockClient(clients.s3),
    athena: mockClient(clients.athena),
  };
  mocks.cfn.on(DescribeStacksCommand).resolves(recorded.describeStacks);
  mocks.dynamodb.on(ScanCommand).resolves(recorded.scanUsers);
  mocks.sfn.on(StartExecutionCommand).resolves(recorded.startExecution);
  mocks.sfn
    .on(DescribeExecutionCommand)
    .resolvesOnce(recorded.executionRunning)
    .resolves(recorded.executionSucceeded);
  mocks.s3.on(GetObjectCommand).callsFake(() => ({ Body: manifestBody(recorded.manifest) }));
  const sql = new Map<string, string>();
  mocks.athena.on(StartQueryExecutionCommand).callsFake((input: { QueryString?: string }) => {
    const id = queryIdFor(input.QueryString);
    sql.set(id, input.QueryString ?? '');
    return recorded.startQuery(id);
  });
  for (const id of [recorded.VIEW_QUERY_ID, recorded.RAW_QUERY_ID]) {
    mocks.athena
      .on(GetQueryExecutionCommand, { QueryExecutionId: id })
      .callsFakeOnce(() => recorded.queryRunning(id, sql.get(id) ?? ''))
      .callsFake(() => recorded.querySucceeded(id, sql.get(id) ?? ''));
    mocks.athena.on(GetQueryResultsCommand, { QueryExecutionId: id }).resolves(recorded.countResult(5));
  }
  return mocks;
}

/** Runs the check on a virtual clock (a ten-minute wait takes no time) and keeps what it printed. */
async function smoke(clients: SmokeClients, options: SmokeOptions = OPTIONS) {
  let now = Date.parse('2026-12-14T09:00:00.000Z');
  const clock = {
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
  };
  const lines: string[] = [];
  const code = await runSmoke(options, clients, clock, (line) => lines.push(line));
  return { code, lines, output: lines.join('\n') };
}

describe('npm run smoke', () => {
  let clients: SmokeClients;
  let mocks: Mocks;

  beforeEach(() => {
    // Prepare: real SDK clients whose calls answer with the recorded responses.
    clients = {
      cloudFormation: new CloudFormationClient(config),
      dynamodb: new DynamoDBClient(config),
      sfn: new SFNClient(config),
      s3: new S3Client(config),
      athena: new AthenaClient(config),
    };
    mocks = healthyStack(clients);
  });

  afterEach(() => {
    for (const mock of Object.values(mocks)) mock.restore();
  });

  it('passes every step on a healthy deploy and exits 0', async () => {
    // Act
    const { code, lines } = await smoke(clients);

    // Assess: one PASS line per step, in order.
    expect(lines).toEqual([
      `PASS stack: MoonKeySessionExport in eu-west-1 is UPDATE_COMPLETE; state machine ${recorded.STATE_MACHINE_ARN}`,
      `PASS users: 3 from table ${recorded.USERS_TABLE}: user_2b1f, user_7c3a, user_9d0e`,
      expect.stringMatching(
        /^PASS audit: execution audit-20261214T090000Z-[0-9a-f]{8} SUCCEEDED in 5 s: snapshot audit-20261214T090000Z-9f2c4e1a, run r20261214T090004512Z-5d0e8b$/,
      ),
      `PASS manifest: committed s3://${recorded.BUCKET}/${recorded.MANIFEST_KEY}: 3 users, 2 with sessions, 5 sessions in 1 file(s)`,
      `PASS athena-view: 5 sessions through sessions, as the manifest says (query ${recorded.VIEW_QUERY_ID})`,
      `PASS athena-raw: 5 sessions through sessions_raw, as the manifest says (query ${recorded.RAW_QUERY_ID})`,
    ]);
    expect(code).toBe(0);
  });

  it('starts the audit `npm run audit` would send, for the users read from the stack’s users table', async () => {
    await smoke(clients);

    expect(mocks.dynamodb).toHaveReceivedCommandWith(ScanCommand, {
      TableName: recorded.USERS_TABLE,
      ProjectionExpression: '#id',
      ExpressionAttributeNames: { '#id': 'user_id' },
    });
    expect(mocks.sfn).toHaveReceivedCommandTimes(StartExecutionCommand, 1);
    const start = mocks.sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input;
    expect(start?.stateMachineArn).toBe(recorded.STATE_MACHINE_ARN);
    expect(start?.name).toMatch(/^audit-20261214T090000Z-[0-9a-f]{8}$/);
    expect(JSON.parse(start?.input ?? '')).toEqual({
      reason: AUDIT_REASON,
      userIds: ['user_2b1f', 'user_7c3a', 'user_9d0e'],
      dryRun: false,
    });
    expect(mocks.s3).toHaveReceivedCommandWith(GetObjectCommand, {
      Bucket: recorded.BUCKET,
      Key: recorded.MANIFEST_KEY,
    });
  });

  it('queries the view for the snapshot and the raw table for the run, in the stack’s workgroup and database', async () => {
    await smoke(clients);

    const queries = mocks.athena.commandCalls(StartQueryExecutionCommand).map((call) => call.args[0].input);
    expect(queries).toEqual([
      {
        QueryString: `SELECT count(*) AS sessions FROM "moon_key_session_export"."sessions" WHERE dt = '2026-12-14' AND snapshot_id = '${recorded.SNAPSHOT_ID}'`,
        WorkGroup: recorded.WORK_GROUP,
        QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: recorded.DATABASE },
      },
      {
        QueryString: `SELECT count(*) AS sessions FROM "moon_key_session_export"."sessions_raw" WHERE dt = '2026-12-14' AND snapshot_id = '${recorded.SNAPSHOT_ID}' AND run_id = '${recorded.RUN_ID}'`,
        WorkGroup: recorded.WORK_GROUP,
        QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: recorded.DATABASE },
      },
    ]);
  });

  describe('a deploy that writes a pseudonymized copy', () => {
    const ANALYST_WORK_GROUP = 'MoonKeySessionExport-sessions-pseudonymized';
    const withCopies = (copies: 'pseudonymized' | 'both') => {
      const [deployed] = recorded.describeStacks.Stacks ?? [];
      mocks.cfn.on(DescribeStacksCommand).resolves({
        ...recorded.describeStacks,
        Stacks: [
          {
            ...(deployed as NonNullable<typeof deployed>),
            Outputs: [
              ...(deployed?.Outputs ?? []),
              { OutputKey: 'AnalystAthenaWorkGroup', OutputValue: ANALYST_WORK_GROUP },
            ],
          },
        ],
      });
      const manifest = {
        ...recorded.manifest,
        pii: { copies, policy: 'pseudonymize', key_fingerprint: 'hmac-sha256:0123456789abcdef' },
      };
      mocks.s3.on(GetObjectCommand).callsFake(() => ({ Body: manifestBody(manifest as Manifest) }));
    };

    it('counts through the pseudonymized view and table, in the analysts’ workgroup, and not the empty raw ones', async () => {
      withCopies('pseudonymized');

      const { code, lines } = await smoke(clients);

      expect(lines.slice(4)).toEqual([
        `PASS athena-pseudonymized-view: 5 sessions through sessions_pseudonymized, as the manifest says (query ${recorded.VIEW_QUERY_ID})`,
        `PASS athena-pseudonymized-raw: 5 sessions through sessions_pseudonymized_raw, as the manifest says (query ${recorded.RAW_QUERY_ID})`,
      ]);
      expect(code).toBe(0);
      const queries = mocks.athena.commandCalls(StartQueryExecutionCommand).map((call) => call.args[0].input);
      expect(queries.map((q) => [q.WorkGroup, q.QueryString])).toEqual([
        [
          ANALYST_WORK_GROUP,
          `SELECT count(*) AS sessions FROM "moon_key_session_export"."sessions_pseudonymized" WHERE dt = '2026-12-14' AND snapshot_id = '${recorded.SNAPSHOT_ID}'`,
        ],
        [
          ANALYST_WORK_GROUP,
          `SELECT count(*) AS sessions FROM "moon_key_session_export"."sessions_pseudonymized_raw" WHERE dt = '2026-12-14' AND snapshot_id = '${recorded.SNAPSHOT_ID}' AND run_id = '${recorded.RUN_ID}'`,
        ],
      ]);
    });

    it('counts through both copies when the run wrote both', async () => {
      withCopies('both');

      const { code, lines } = await smoke(clients);

      expect(lines.slice(4).map((l) => l.split(':')[0])).toEqual([
        'PASS athena-view',
        'PASS athena-raw',
        'PASS athena-pseudonymized-view',
        'PASS athena-pseudonymized-raw',
      ]);
      expect(code).toBe(0);
    });

    it('fails the pseudonymized steps, saying what to deploy, on a stack without the analysts’ workgroup', async () => {
      withCopies('pseudonymized');
      mocks.cfn.on(DescribeStacksCommand).resolves(recorded.describeStacks);

      const { code, lines } = await smoke(clients);

      expect(lines[4]).toBe(
        `FAIL athena-pseudonymized-view: the stack has no AnalystAthenaWorkGroup output, but run ${recorded.RUN_ID} wrote a pseudonymized copy — fix: deploy this version of the project with the copies prop the function runs with`,
      );
      expect(code).toBe(1);
    });
  });

  it('takes the first --users N ids of the users table, across pages, passing over items without one', async () => {
    mocks.dynamodb
      .on(ScanCommand)
      .resolvesOnce({
        ...recorded.scanUsers,
        Items: [{ user_id: { S: 'user_0a1b' } }, { user_id: { N: '42' } }],
        Count: 2,
        ScannedCount: 2,
        LastEvaluatedKey: { user_id: { N: '42' } },
      })
      .resolves(recorded.scanUsers);

    const { code, lines } = await smoke(clients, { ...OPTIONS, users: { kind: 'count', count: 2 } });

    expect(lines[1]).toBe(`PASS users: 2 from table ${recorded.USERS_TABLE}: user_0a1b, user_2b1f`);
    const start = mocks.sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input;
    expect(JSON.parse(start?.input ?? '').userIds).toEqual(['user_0a1b', 'user_2b1f']);
    expect(mocks.dynamodb.commandCalls(ScanCommand)[1]?.args[0].input.ExclusiveStartKey).toEqual({
      user_id: { N: '42' },
    });
    expect(code).toBe(0);
  });

  it('fails the users step on a table with no usable id, and starts no audit', async () => {
    mocks.dynamodb
      .on(ScanCommand)
      .resolves({ ...recorded.scanUsers, Items: [], Count: 0, LastEvaluatedKey: undefined });

    const { code, lines } = await smoke(clients);

    expect(lines[1]).toBe(
      `FAIL users: table ${recorded.USERS_TABLE} has no item with a string user_id — fix: put a few users in it, or name users the API knows: --users <id>,<id>`,
    );
    expect(mocks.sfn).not.toHaveReceivedCommand(StartExecutionCommand);
    expect(code).toBe(1);
  });

  it('audits the users given with --users without reading the users table', async () => {
    const { code, lines } = await smoke(clients, { ...OPTIONS, users: { kind: 'ids', ids: ['u1', 'u2'] } });

    expect(lines[1]).toBe('PASS users: 2 given with --users');
    expect(mocks.dynamodb).not.toHaveReceivedCommand(ScanCommand);
    const start = mocks.sfn.commandCalls(StartExecutionCommand)[0]?.args[0].input;
    expect(JSON.parse(start?.input ?? '').userIds).toEqual(['u1', 'u2']);
    expect(code).toBe(0);
  });

  it('reports a stack that does not exist, skips every later step and exits 1', async () => {
    // Prepare: what CloudFormation answers for an unknown stack name.
    mocks.cfn.on(DescribeStacksCommand).rejects(
      new CloudFormationServiceException({
        name: 'ValidationError',
        $fault: 'client',
        $metadata: { httpStatusCode: 400, requestId: '9b8a7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d' },
        message: 'Stack with id MoonKeySessionExport does not exist',
      }),
    );

    const { code, lines } = await smoke(clients);

    expect(lines).toEqual([
      'FAIL stack: no stack MoonKeySessionExport in eu-west-1 — fix: deploy it first (README "First deploy"), or pass --stack-name and --region of the deployed one',
      'SKIP users: skipped, it needs stack, which failed',
      'SKIP audit: skipped, it needs stack, which failed',
      'SKIP manifest: skipped, it needs stack, which failed',
      'SKIP athena-view: skipped, it needs stack, which failed',
      'SKIP athena-raw: skipped, it needs stack, which failed',
    ]);
    expect(code).toBe(1);
    expect(mocks.sfn).not.toHaveReceivedCommand(StartExecutionCommand);
  });

  it('reports a stack that is missing an output the check reads', async () => {
    const stack = recorded.describeStacks.Stacks?.[0];
    if (!stack) throw new Error('the recorded DescribeStacks holds one stack');
    mocks.cfn.on(DescribeStacksCommand).resolves({
      ...recorded.describeStacks,
      Stacks: [{ ...stack, Outputs: stack.Outputs?.filter((o) => o.OutputKey !== 'AthenaWorkGroup') }],
    });

    const { code, lines } = await smoke(clients);

    expect(lines[0]).toBe(
      'FAIL stack: stack MoonKeySessionExport has no output AthenaWorkGroup — fix: deploy this version of the project (its stack has every output the check reads)',
    );
    expect(code).toBe(1);
  });

  it('reports a FAILED execution with its error and message, says how to set the key, and never prints the trace', async () => {
    mocks.sfn
      .on(DescribeExecutionCommand)
      .resolvesOnce(recorded.executionRunning)
      .resolves(recorded.executionFailedNoApiKey);

    const { code, lines, output } = await smoke(clients);

    expect(lines[2]).toMatch(
      /^FAIL audit: execution audit-20261214T090000Z-[0-9a-f]{8} FAILED after 5 s: SecretFetchError: Secret arn:aws:secretsmanager:eu-west-1:123456789012:secret:ApiKey1A2B3C4D-Ab1Cd2Ef3Gh4-AbC123 holds no API key: /,
    );
    expect(lines[2]).toContain(
      `— fix: set the API key: aws secretsmanager put-secret-value --secret-id ${recorded.SECRET_ARN} --secret-string '{"apiKey":"<your key>"}'`,
    );
    expect(output).not.toContain('/var/task/index.js');
    expect(lines.slice(3)).toEqual([
      'SKIP manifest: skipped, it needs audit, which failed',
      'SKIP athena-view: skipped, it needs audit, which failed',
      'SKIP athena-raw: skipped, it needs audit, which failed',
    ]);
    expect(code).toBe(1);
  });

  it('gives up on an execution still running at --timeout, and says it is queued behind an earlier run', async () => {
    mocks.sfn.on(DescribeExecutionCommand).resolves(recorded.executionRunning);
    mocks.sfn.on(GetExecutionHistoryCommand).resolves(recorded.historyWaitingForTurn);

    const { code, lines } = await smoke(clients);

    expect(lines[2]).toBe(
      `FAIL audit: execution ${recorded.EXECUTION_ARN} still RUNNING after 600 s (in WaitForTurn) — fix: an earlier run holds the queue (runs go one at a time): let it finish or stop it, then rerun`,
    );
    // Polled every 5 s of the virtual clock until the 600 s were up: 120 sleeps, 121 looks.
    expect(mocks.sfn).toHaveReceivedCommandTimes(DescribeExecutionCommand, 121);
    expect(lines.slice(3).every((line) => line.startsWith('SKIP '))).toBe(true);
    expect(code).toBe(1);
  });

  it.each([
    ['sessions', recorded.VIEW_QUERY_ID, 'athena-view', 'the view does not show exactly this run'],
    ['sessions_raw', recorded.RAW_QUERY_ID, 'athena-raw', "sessions_raw does not read this run's files"],
  ])(
    'fails when the count through %s differs from the manifest, and still runs the other query',
    async (source, id, step, fix) => {
      mocks.athena.on(GetQueryResultsCommand, { QueryExecutionId: id }).resolves(recorded.countResult(3));

      const { code, lines } = await smoke(clients);

      const line = lines.find((l) => l.includes(` ${step}: `));
      expect(line).toMatch(
        new RegExp(
          `^FAIL ${step}: ${source} counts 3 sessions of the snapshot, the manifest 5 — fix: ${fix}`,
        ),
      );
      const other = step === 'athena-view' ? 'athena-raw' : 'athena-view';
      expect(lines.find((l) => l.includes(` ${other}: `))).toMatch(new RegExp(`^PASS ${other}: 5 sessions`));
      expect(code).toBe(1);
    },
  );

  it('reports an Athena query that FAILED on a stale view, with what to fix', async () => {
    mocks.athena
      .on(GetQueryExecutionCommand, { QueryExecutionId: recorded.VIEW_QUERY_ID })
      .resolves(recorded.queryFailedStaleView(recorded.VIEW_QUERY_ID, 'SELECT count(*) ...'));

    const { code, lines } = await smoke(clients);

    expect(lines[4]).toMatch(
      /^FAIL athena-view: the query through sessions FAILED: VIEW_IS_STALE: line 1:36: View 'awsdatacatalog\.moon_key_session_export\.sessions' is stale or in invalid state: .* — fix: the view moon_key_session_export\.sessions is stale: its Presto definition's column types \(varchar, bigint, row\(\.\.\.\), array\(\.\.\.\)\)/,
    );
    expect(lines[5]).toMatch(/^PASS athena-raw: /);
    expect(mocks.athena).not.toHaveReceivedCommandWith(GetQueryResultsCommand, {
      QueryExecutionId: recorded.VIEW_QUERY_ID,
    });
    expect(code).toBe(1);
  });

  it('stops a query still running at --timeout and reports it', async () => {
    const running: GetQueryExecutionCommandOutput = recorded.queryRunning(
      recorded.RAW_QUERY_ID,
      'SELECT ...',
    );
    mocks.athena.on(GetQueryExecutionCommand, { QueryExecutionId: recorded.RAW_QUERY_ID }).resolves(running);
    mocks.athena.on(StopQueryExecutionCommand).resolves(recorded.stopQuery);

    const { code, lines } = await smoke(clients, { ...OPTIONS, timeoutMs: 30_000 });

    expect(lines[5]).toBe(
      `FAIL athena-raw: the query through sessions_raw (${recorded.RAW_QUERY_ID}) was still RUNNING after 30 s; stopped it — fix: rerun with a larger --timeout; if it stays QUEUED, the account is at its Athena query quota`,
    );
    expect(mocks.athena).toHaveReceivedCommandWith(StopQueryExecutionCommand, {
      QueryExecutionId: recorded.RAW_QUERY_ID,
    });
    expect(code).toBe(1);
  });

  it('fails the manifest step when an audited user failed, naming the user and the error', async () => {
    const failed: Manifest = {
      ...recorded.manifest,
      counts: { ...recorded.manifest.counts, users_failed: 1, sessions_exported: 5 },
      failed_users: [
        { user_id: 'user_7c3a', error: 'HTTP 500 after 4 attempts', error_type: 'RetriesExhaustedError' },
      ],
    };
    mocks.s3.on(GetObjectCommand).callsFake(() => ({ Body: manifestBody(failed) }));

    const { code, lines } = await smoke(clients);

    expect(lines[3]).toBe(
      `FAIL manifest: 1 of 3 users failed (user_7c3a: RetriesExhaustedError: HTTP 500 after 4 attempts) — fix: every audited user must export: see failed_users in s3://${recorded.BUCKET}/${recorded.MANIFEST_KEY}; check the prop apiUrl and that the users exist in MoonKey`,
    );
    expect(lines.slice(4).every((line) => line.startsWith('SKIP athena-'))).toBe(true);
    expect(code).toBe(1);
  });

  it("fails the manifest step when MoonKey knows none of the audited users, as another app's key gives", async () => {
    const gone: Manifest = {
      ...recorded.manifest,
      counts: {
        ...recorded.manifest.counts,
        users_not_found: 3,
        users_with_sessions: 0,
        sessions_exported: 0,
      },
      files: { ...recorded.manifest.files, sessions: [] },
    };
    mocks.s3.on(GetObjectCommand).callsFake(() => ({ Body: manifestBody(gone) }));

    const { code, lines } = await smoke(clients);

    expect(lines[3]).toBe(
      'FAIL manifest: MoonKey answered 404 user_not_found for all 3 audited users, taken from the users table — fix: the function asks another app or environment than the table belongs to: check the prop apiUrl and that the key in the API key secret is a key of that app',
    );
    expect(lines.slice(4).every((line) => line.startsWith('SKIP athena-'))).toBe(true);
    expect(code).toBe(1);
  });

  it('passes the manifest step when some audited users were deleted, and says how many', async () => {
    const some: Manifest = {
      ...recorded.manifest,
      counts: { ...recorded.manifest.counts, users_not_found: 1 },
    };
    mocks.s3.on(GetObjectCommand).callsFake(() => ({ Body: manifestBody(some) }));

    const { lines } = await smoke(clients);

    expect(lines[3]).toMatch(/^PASS manifest: committed s3:\/\/\S+: 3 users \(1 not found in MoonKey\), /);
  });

  it('fails the manifest step when the committed manifest is not in the bucket', async () => {
    mocks.s3
      .on(GetObjectCommand)
      .rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));

    const { code, lines } = await smoke(clients);

    expect(lines[3]).toBe(
      `FAIL manifest: the run says it committed s3://${recorded.BUCKET}/${recorded.MANIFEST_KEY}, but the bucket has no such object — fix: check that ExportBucketName is the bucket the function writes (existingBucketName), and the function's logs`,
    );
    expect(code).toBe(1);
  });
});
