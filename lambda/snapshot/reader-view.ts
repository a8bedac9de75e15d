import { type AthenaColumn, PARTITION_COLUMN, sessionColumns } from './athena-columns';

/**
 * What a reader sees of the snapshots: the sessions of committed runs only, and of each snapshot
 * only the run its newest committed manifest names (the commit protocol, snapshot/commit.ts). Every run writes
 * run-unique files under `<prefix>/sessions/`; the table over them (`sessions_raw`) therefore holds
 * lines of failed, superseded and in-flight runs too. The view `sessions` joins them to the
 * committed manifests, so a reader never sees a partial or mixed snapshot.
 *
 * Plain data and SQL, no CDK: the stack declares the view with this SQL (Athena, Trino), and
 * `npm start` runs the same text over DuckDB tables with the same names bound to its own sources.
 */

/** The Glue view readers query. */
export const READER_VIEW_NAME = 'sessions';
/** The Glue table over every line under `<prefix>/sessions/`, of every run. */
export const RAW_SESSIONS_TABLE = 'sessions_raw';
/** The pseudonymized copy's view (EXPORT_COPIES pseudonymized or both): same columns, same rule. */
export const PSEUDONYMIZED_VIEW_NAME = 'sessions_pseudonymized';
/** The Glue table over every line under `<prefix>/pseudonymized/sessions/`, of every run. */
export const PSEUDONYMIZED_SESSIONS_TABLE = 'sessions_pseudonymized_raw';
/** The Glue table over `<prefix>/manifests/`. */
export const MANIFESTS_TABLE = 'manifests';

/** The view's columns, in order: every session column, then the partition column `dt`. */
export const readerViewColumns: readonly AthenaColumn[] = [...sessionColumns, PARTITION_COLUMN];

/** SQL names of the two relations the view reads: bare or qualified table names, or subqueries. */
export interface ReaderViewSources {
  /** e.g. `"moon_key_session_export"."sessions_raw"`, or a DuckDB `read_ndjson(...)` table. */
  readonly sessionsRaw: string;
  readonly manifests: string;
}

const quoted = (name: string) => `"${name}"`;

/**
 * The view's SELECT, in the SQL Trino (Athena engine v3) and DuckDB share: explicit columns (no
 * `s.*`, so a column added to the raw table never changes the view's shape silently), quoted names,
 * an inner join on the committed run with the greatest run id of each (dt, snapshot_id). Run ids
 * sort by start time, so "greatest" is "newest".
 */
export function readerViewSql(sources: ReaderViewSources): string {
  const columns = readerViewColumns.map((c) => `s.${quoted(c.name)}`).join(', ');
  return `SELECT ${columns}
FROM ${sources.sessionsRaw} s
JOIN (
  SELECT "dt", "snapshot_id", max("run_id") AS "run_id"
  FROM ${sources.manifests}
  WHERE "status" = 'committed'
  GROUP BY "dt", "snapshot_id"
) c ON s."dt" = c."dt" AND s."snapshot_id" = c."snapshot_id" AND s."run_id" = c."run_id"`;
}
