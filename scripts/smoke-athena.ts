import {
  type AthenaClient,
  GetQueryExecutionCommand,
  type GetQueryExecutionCommandOutput,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { OUTPUTS } from '../infra/stack-outputs';
import {
  PSEUDONYMIZED_SESSIONS_TABLE,
  PSEUDONYMIZED_VIEW_NAME,
  RAW_SESSIONS_TABLE,
  READER_VIEW_NAME,
} from '../lambda/snapshot/reader-view';
import type { AuditRun } from './smoke-audit';
import { athenaFix, awsCallFix, type FixContext } from './smoke-fixes';
import type { CommittedManifest } from './smoke-manifest';
import { type Clock, type DeployedStack, fail, type Outcome, pass } from './smoke-steps';

/** Which relation a count reads: a copy's readers' view, or its table of every run's lines. */
export type CountSource =
  | typeof READER_VIEW_NAME
  | typeof RAW_SESSIONS_TABLE
  | typeof PSEUDONYMIZED_VIEW_NAME
  | typeof PSEUDONYMIZED_SESSIONS_TABLE;

const isView = (source: CountSource) => source === READER_VIEW_NAME || source === PSEUDONYMIZED_VIEW_NAME;
const isPseudonymized = (source: CountSource) =>
  source === PSEUDONYMIZED_VIEW_NAME || source === PSEUDONYMIZED_SESSIONS_TABLE;

/**
 * The relations that must count the run's sessions, by the copies its manifest says it wrote: a
 * pseudonymized-only run leaves the raw view and table empty, and a raw run the pseudonymized ones.
 */
export function countSources(copies: CommittedManifest['pii']['copies']): readonly [string, CountSource][] {
  const raw: [string, CountSource][] = [
    ['athena-view', READER_VIEW_NAME],
    ['athena-raw', RAW_SESSIONS_TABLE],
  ];
  const pseudonymized: [string, CountSource][] = [
    ['athena-pseudonymized-view', PSEUDONYMIZED_VIEW_NAME],
    ['athena-pseudonymized-raw', PSEUDONYMIZED_SESSIONS_TABLE],
  ];
  if (copies === 'raw') return raw;
  return copies === 'pseudonymized' ? pseudonymized : [...raw, ...pseudonymized];
}

const SAFE_LITERAL = /^[A-Za-z0-9._-]+$/;

/**
 * The count of the run's sessions through `source`, in the SQL the named queries use: `dt` bounds
 * partition projection to the snapshot's day. The view is asked for the snapshot (it must show
 * only this run, its one committed run); the raw table for this run's lines.
 */
export function countSql(source: CountSource, database: string, manifest: CommittedManifest): string {
  for (const value of [manifest.dt, manifest.snapshot_id, manifest.run_id]) {
    // Written into the SQL text: ids the job makes never need quoting, anything else is refused.
    if (!SAFE_LITERAL.test(value)) throw new Error(`refusing to put ${JSON.stringify(value)} into a query`);
  }
  const where = [`dt = '${manifest.dt}'`, `snapshot_id = '${manifest.snapshot_id}'`];
  if (!isView(source)) where.push(`run_id = '${manifest.run_id}'`);
  return `SELECT count(*) AS sessions FROM "${database}"."${source}" WHERE ${where.join(' AND ')}`;
}

export interface QueryOptions {
  readonly timeoutMs: number;
  readonly pollMs: number;
}

/** Steps 5 and 6: one count through `source`, compared with the manifest's `sessions_exported`. */
export async function checkAthenaCount(
  athena: AthenaClient,
  clock: Clock,
  stack: DeployedStack,
  run: AuditRun,
  manifest: CommittedManifest,
  source: CountSource,
  options: QueryOptions,
  ctx: FixContext,
): Promise<Outcome<number>> {
  const database = stack.outputs[OUTPUTS.glueDatabase] ?? '';
  // The pseudonymized copy is queried where its readers query it: the analysts' workgroup.
  const workGroup =
    stack.outputs[isPseudonymized(source) ? OUTPUTS.analystWorkGroup : OUTPUTS.athenaWorkGroup] ?? '';
  if (workGroup === '') {
    return fail(
      `the stack has no ${OUTPUTS.analystWorkGroup} output, but run ${run.runId} wrote a pseudonymized copy`,
      'deploy this version of the project with the copies prop the function runs with',
    );
  }
  let sql: string;
  try {
    sql = countSql(source, database, manifest);
  } catch (error) {
    return fail(
      `${(error as Error).message} (manifest of run ${run.runId})`,
      'the manifest holds ids the job never makes: deploy this version of the project',
    );
  }
  let queryExecutionId: string;
  try {
    const started = await athena.send(
      new StartQueryExecutionCommand({
        QueryString: sql,
        WorkGroup: workGroup,
        QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: database },
      }),
    );
    queryExecutionId = started.QueryExecutionId ?? '';
  } catch (error) {
    return fail(
      `starting the query through ${source} in workgroup ${workGroup} failed: ${(error as Error).message}`,
      /WorkGroup.*(not found|is not found|does not exist)/i.test((error as Error).message)
        ? 'the workgroup is gone: redeploy the stack'
        : awsCallFix(error, `athena:StartQueryExecution on workgroup ${workGroup}`),
    );
  }
  const deadline = clock.now() + options.timeoutMs;
  let state: string | undefined;
  let status: GetQueryExecutionCommandOutput['QueryExecution'];
  for (;;) {
    try {
      ({ QueryExecution: status } = await athena.send(
        new GetQueryExecutionCommand({ QueryExecutionId: queryExecutionId }),
      ));
    } catch (error) {
      return fail(
        `GetQueryExecution ${queryExecutionId} failed: ${(error as Error).message}`,
        awsCallFix(error, 'athena:GetQueryExecution'),
      );
    }
    state = status?.Status?.State;
    if (state !== 'QUEUED' && state !== 'RUNNING') break;
    const left = deadline - clock.now();
    if (left <= 0) {
      let stopped = true;
      try {
        await athena.send(new StopQueryExecutionCommand({ QueryExecutionId: queryExecutionId }));
      } catch {
        stopped = false;
      }
      return fail(
        `the query through ${source} (${queryExecutionId}) was still ${state} after ${Math.round(options.timeoutMs / 1000)} s; ${stopped ? 'stopped it' : 'could not stop it'}`,
        'rerun with a larger --timeout; if it stays QUEUED, the account is at its Athena query quota',
      );
    }
    await clock.sleep(Math.min(options.pollMs, left));
  }
  if (state !== 'SUCCEEDED') {
    const reason =
      status?.Status?.AthenaError?.ErrorMessage ?? status?.Status?.StateChangeReason ?? 'no reason given';
    return fail(`the query through ${source} ${state ?? 'ended'}: ${reason}`, athenaFix(reason, ctx));
  }
  let count: number;
  try {
    const results = await athena.send(new GetQueryResultsCommand({ QueryExecutionId: queryExecutionId }));
    // Row 0 is the header; row 1 the count.
    count = Number(results.ResultSet?.Rows?.[1]?.Data?.[0]?.VarCharValue);
  } catch (error) {
    return fail(
      `reading the result of ${queryExecutionId} failed: ${(error as Error).message}`,
      awsCallFix(error, "athena:GetQueryResults and s3:GetObject on the workgroup's results bucket"),
    );
  }
  const expected = manifest.counts.sessions_exported;
  if (count !== expected) {
    const prefix = stack.outputs[OUTPUTS.exportPrefix];
    const bucket = stack.outputs[OUTPUTS.bucketName];
    return fail(
      `${source} counts ${Number.isNaN(count) ? 'no number' : count} sessions of the snapshot, the manifest ${expected}`,
      isView(source)
        ? `the view does not show exactly this run: check that the manifests table reads s3://${bucket}/${prefix}/manifests/dt=${manifest.dt}/ (SELECT run_id, status FROM "${database}"."manifests" WHERE dt = '${manifest.dt}' AND snapshot_id = '${manifest.snapshot_id}')`
        : `${source} does not read this run's files: compare its location and storage.location.template with s3://${bucket}/${prefix}/${isPseudonymized(source) ? 'pseudonymized/' : ''}sessions/dt=${manifest.dt}/`,
    );
  }
  return pass(count, `${count} sessions through ${source}, as the manifest says (query ${queryExecutionId})`);
}
