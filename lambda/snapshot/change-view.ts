import type { AthenaColumn } from './athena-columns';
import { readerViewColumns } from './reader-view';

/**
 * What changed between snapshots: for each committed scheduled snapshot and the committed
 * scheduled snapshot before it, the sessions that `started` (in it, not in the one before) and
 * those that `ended` (in the one before, not in it), with the session's fields and both
 * snapshots' ids. Built on the reader view, so only each snapshot's newest committed run counts;
 * audit snapshots (a handful of users) are never one side of a pair.
 *
 * Plain data and SQL, no CDK: the stack declares the Glue view with this SQL (Trino), and the
 * tests run the same text on DuckDB. A session is the same session in both snapshots when its
 * `user_id` and `id` are.
 */

/** The Glue view of session changes. */
export const CHANGES_VIEW_NAME = 'session_changes';

/** Columns of the reader view that say which snapshot a line belongs to, not what the session is. */
const SNAPSHOT_COLUMNS = new Set(['snapshot_id', 'run_id', 'snapshot_at', 'dt']);

/** The session's own fields, as the reader view has them. */
const sessionFieldColumns = readerViewColumns.filter((c) => !SNAPSHOT_COLUMNS.has(c.name));

const column = (name: string): AthenaColumn => {
  const found = readerViewColumns.find((c) => c.name === name);
  if (!found) throw new Error(`the reader view has no column ${name}`);
  return found;
};

/**
 * The view's columns, in order: `change` (`started` or `ended`), the snapshot the change is
 * seen in (`dt`, `snapshot_id`, `snapshot_at`), the one before it, then the session's fields
 * (from the snapshot that has the session: the later one for `started`, the earlier for `ended`).
 */
export const changeViewColumns: readonly AthenaColumn[] = [
  { name: 'change', type: { kind: 'primitive', name: 'string' } },
  column('dt'),
  column('snapshot_id'),
  column('snapshot_at'),
  { name: 'previous_dt', type: column('dt').type },
  { name: 'previous_snapshot_id', type: column('snapshot_id').type },
  ...sessionFieldColumns,
];

/** SQL names of the relations the view reads: the reader view and the manifests table. */
export interface ChangeViewSources {
  readonly sessions: string;
  readonly manifests: string;
}

const quoted = (name: string) => `"${name}"`;

/**
 * Each committed scheduled snapshot with the one before it (`previous_*` null for the first).
 * The window runs over every committed scheduled snapshot: a filter on `dt` cannot go below it
 * without changing which snapshot is "before", so the manifests table (one small file per run)
 * is read whole, and the sessions only for the snapshots a query asks for.
 */
const pairsSql = (manifests: string) => `(
  SELECT k."dt", k."snapshot_id", k."snapshot_at",
         lag(k."dt") OVER (ORDER BY k."snapshot_at", k."snapshot_id") AS "previous_dt",
         lag(k."snapshot_id") OVER (ORDER BY k."snapshot_at", k."snapshot_id") AS "previous_snapshot_id"
  FROM (
    SELECT m."dt", m."snapshot_id", max(m."snapshot_at") AS "snapshot_at"
    FROM ${manifests} m
    WHERE m."status" = 'committed' AND m."trigger" = 'scheduled'
    GROUP BY m."dt", m."snapshot_id"
  ) k
) p`;

/**
 * The view's SELECT, in the SQL Trino (Athena engine v3) and DuckDB share: two anti-joins (a
 * LEFT JOIN kept where the other side is NULL), one per kind of change, under UNION ALL.
 */
export function changeViewSql(sources: ChangeViewSources): string {
  const pairColumns = ['dt', 'snapshot_id', 'snapshot_at', 'previous_dt', 'previous_snapshot_id']
    .map((c) => `p.${quoted(c)}`)
    .join(', ');
  const fields = (alias: string) => sessionFieldColumns.map((c) => `${alias}.${quoted(c.name)}`).join(', ');
  const sameSession = (a: string, b: string) => `${a}."user_id" = ${b}."user_id" AND ${a}."id" = ${b}."id"`;
  return `SELECT 'started' AS "change", ${pairColumns}, ${fields('cur')}
FROM ${pairsSql(sources.manifests)}
JOIN ${sources.sessions} cur ON cur."dt" = p."dt" AND cur."snapshot_id" = p."snapshot_id"
LEFT JOIN ${sources.sessions} was ON was."dt" = p."previous_dt" AND was."snapshot_id" = p."previous_snapshot_id"
  AND ${sameSession('was', 'cur')}
WHERE p."previous_snapshot_id" IS NOT NULL AND was."id" IS NULL
UNION ALL
SELECT 'ended' AS "change", ${pairColumns}, ${fields('was')}
FROM ${pairsSql(sources.manifests)}
JOIN ${sources.sessions} was ON was."dt" = p."previous_dt" AND was."snapshot_id" = p."previous_snapshot_id"
LEFT JOIN ${sources.sessions} cur ON cur."dt" = p."dt" AND cur."snapshot_id" = p."snapshot_id"
  AND ${sameSession('cur', 'was')}
WHERE cur."id" IS NULL`;
}
