import { CHANGES_VIEW_NAME } from '../../lambda/snapshot/change-view';
import { READER_VIEW_NAME } from '../../lambda/snapshot/reader-view';

/**
 * The Athena queries users actually run, as named queries in the stack's workgroup. `db` is the
 * Glue database; they read the view `sessions` (committed runs only) and the table `manifests`.
 * Every query bounds `dt` so partition projection only enumerates the days it needs.
 *
 * Dialect: Trino, as Athena engine version 3 runs it (the workgroup pins that version). Not DuckDB,
 * which the local tests use and which differs where it matters here:
 * - `UNNEST` of an array of rows: Trino expands every row field into its own column, so the alias
 *   names every field (`AS f(delivery_channel, type, method)`); DuckDB returns one struct column and
 *   rejects a three-name alias. test/infra/athena-sql.test.ts holds every shipped query to Trino's rule.
 * - `/` of two bigints is integer division in Trino, a double in DuckDB: divide by a decimal literal.
 * - `date_format`, `from_unixtime`, `slice`, `cardinality`, `transform` are Trino functions.
 *
 * "Complete" means a scheduled snapshot whose manifest says committed: an audit snapshot may hold a
 * handful of users, and a failed run's lines are never in the view.
 */
export interface NamedQueryText {
  readonly id: string;
  readonly name: string;
  readonly description: string;
  /** `view`: the reader view the query reads (`sessions`, or the pseudonymized copy's). */
  readonly sql: (db: string, view?: string) => string;
}

const latestSnapshot = (db: string, view: string) => `latest AS (
  SELECT snapshot_id, dt
  FROM "${db}"."manifests"
  WHERE status = 'committed' AND trigger = 'scheduled'
    AND dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
  ORDER BY snapshot_at DESC
  LIMIT 1
),
snapshot AS (
  SELECT s.*
  FROM "${db}"."${view}" s
  JOIN latest l ON s.dt = l.dt AND s.snapshot_id = l.snapshot_id
  WHERE s.dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
)`;

/** The changes the latest complete snapshot shows against the one before it, of one kind. */
const latestChanges = (db: string, change: 'started' | 'ended') => `WITH latest AS (
  SELECT snapshot_id, dt
  FROM "${db}"."manifests"
  WHERE status = 'committed' AND trigger = 'scheduled'
    AND dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
  ORDER BY snapshot_at DESC
  LIMIT 1
)
SELECT c.user_id, c.id AS session_id, from_unixtime(c.started_at) AS started,
       from_unixtime(c.last_active_at) AS last_active, from_unixtime(c.expires_at) AS expires,
       c.device_fingerprint.ip AS ip, c.snapshot_id, c.previous_snapshot_id
FROM "${db}"."${CHANGES_VIEW_NAME}" c
JOIN latest l ON c.dt = l.dt AND c.snapshot_id = l.snapshot_id
WHERE c.change = '${change}'
  AND c.dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
ORDER BY c.user_id, c.started_at;`;

export const NAMED_QUERIES: readonly NamedQueryText[] = [
  {
    id: 'LatestSnapshot',
    name: 'Latest complete snapshot',
    description: 'Every session of the latest committed scheduled snapshot (looks back 7 days).',
    sql: (db, view = READER_VIEW_NAME) => `WITH ${latestSnapshot(db, view)}
SELECT id, user_id, from_unixtime(started_at) AS started, from_unixtime(last_active_at) AS last_active,
       from_unixtime(expires_at) AS expires, device_fingerprint.ip AS ip, cardinality(factors) AS factor_count,
       snapshot_id, dt
FROM snapshot
ORDER BY user_id, started_at;`,
  },
  {
    id: 'SessionsPerUser',
    name: 'Sessions per user (top 50)',
    description: 'Users with the most live sessions in the latest complete snapshot.',
    sql: (db, view = READER_VIEW_NAME) => `WITH ${latestSnapshot(db, view)}
SELECT user_id, count(*) AS sessions, count(DISTINCT device_fingerprint.ip) AS distinct_ips,
       from_unixtime(max(last_active_at)) AS last_active
FROM snapshot
GROUP BY user_id
ORDER BY sessions DESC
LIMIT 50;`,
  },
  {
    id: 'FactorMix',
    name: 'Factor mix',
    description:
      'Which authentication factors live sessions were established with (latest complete snapshot).',
    sql: (db, view = READER_VIEW_NAME) => `WITH ${latestSnapshot(db, view)}
SELECT f.type, f.delivery_channel, count(*) AS factors, count(DISTINCT s.id) AS sessions,
       count(DISTINCT s.user_id) AS users
FROM snapshot s
CROSS JOIN UNNEST(s.factors) AS f(delivery_channel, type, method)
GROUP BY f.type, f.delivery_channel
ORDER BY factors DESC;`,
  },
  {
    id: 'SharedIp',
    name: 'Sessions sharing one IP',
    description: 'IP addresses used by live sessions of more than one user (latest complete snapshot).',
    sql: (db, view = READER_VIEW_NAME) => `WITH ${latestSnapshot(db, view)}
SELECT device_fingerprint.ip AS ip, count(DISTINCT user_id) AS users, count(*) AS sessions,
       slice(array_agg(DISTINCT user_id), 1, 20) AS some_users
FROM snapshot
WHERE device_fingerprint.ip <> ''
GROUP BY device_fingerprint.ip
HAVING count(DISTINCT user_id) > 1
ORDER BY users DESC
LIMIT 100;`,
  },
  {
    id: 'ExpiringSoon',
    name: 'Sessions about to expire',
    description: 'Live sessions of the latest complete snapshot that expire within 24 hours of it.',
    sql: (db, view = READER_VIEW_NAME) => `WITH ${latestSnapshot(db, view)}
SELECT user_id, id, from_unixtime(expires_at) AS expires,
       round((expires_at - snapshot_at) / 3600.0, 1) AS hours_left_at_snapshot, device_fingerprint.ip AS ip
FROM snapshot
WHERE expires_at BETWEEN snapshot_at AND snapshot_at + 86400
ORDER BY expires_at;`,
  },
  {
    id: 'UserAudit',
    name: "One user's sessions (audit)",
    description:
      'Every session of one user in every snapshot of the last 90 days; run with the user id as parameter.',
    sql: (
      db,
      view = READER_VIEW_NAME,
    ) => `SELECT snapshot_id, from_unixtime(snapshot_at) AS snapshot_time, id AS session_id,
       from_unixtime(started_at) AS started, from_unixtime(last_active_at) AS last_active,
       from_unixtime(expires_at) AS expires, device_fingerprint.ip AS ip, device_fingerprint.user_agent AS user_agent,
       transform(factors, f -> f.type || '/' || f.delivery_channel) AS factors
FROM "${db}"."${view}"
WHERE user_id = ?
  AND dt >= date_format(current_date - INTERVAL '90' DAY, '%Y-%m-%d')
ORDER BY snapshot_at DESC, started_at;`,
  },
  {
    id: 'NewSessions',
    name: 'New sessions since the last snapshot',
    description:
      'Sessions in the latest complete snapshot that the complete snapshot before it did not have (view session_changes).',
    sql: (db) => latestChanges(db, 'started'),
  },
  {
    id: 'EndedSessions',
    name: 'Sessions ended since the last snapshot',
    description:
      'Sessions of the complete snapshot before the latest that the latest no longer has: signed out, expired or revoked (view session_changes).',
    sql: (db) => latestChanges(db, 'ended'),
  },
  {
    id: 'NewIpForUser',
    name: 'Users on an IP new for them',
    description:
      'Users of the latest complete snapshot seen from an IP (an IP token under a pseudonymizing PII policy) that none of their sessions had in any committed snapshot of the 90 days before; users seen for the first time are left out.',
    sql: (db) => `WITH latest AS (
  SELECT snapshot_id, dt, snapshot_at
  FROM "${db}"."manifests"
  WHERE status = 'committed' AND trigger = 'scheduled'
    AND dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
  ORDER BY snapshot_at DESC
  LIMIT 1
),
seen_now AS (
  SELECT DISTINCT s.user_id, s.device_fingerprint.ip AS ip
  FROM "${db}"."${READER_VIEW_NAME}" s
  JOIN latest l ON s.dt = l.dt AND s.snapshot_id = l.snapshot_id
  WHERE s.dt >= date_format(current_date - INTERVAL '7' DAY, '%Y-%m-%d')
    AND s.device_fingerprint.ip <> ''
),
seen_before AS (
  SELECT DISTINCT s.user_id, s.device_fingerprint.ip AS ip
  FROM "${db}"."${READER_VIEW_NAME}" s
  JOIN latest l ON s.snapshot_at < l.snapshot_at
  WHERE s.dt >= date_format(current_date - INTERVAL '90' DAY, '%Y-%m-%d')
)
SELECT n.user_id, n.ip
FROM seen_now n
LEFT JOIN seen_before b ON b.user_id = n.user_id AND b.ip = n.ip
WHERE b.user_id IS NULL
  AND n.user_id IN (SELECT k.user_id FROM seen_before k)
ORDER BY n.user_id, n.ip;`,
  },
];
