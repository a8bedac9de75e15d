import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import { NAMED_QUERIES } from '../../../infra/constructs/named-queries';
import { changeViewColumns } from '../../../lambda/snapshot/change-view';
import { queryLocalSnapshots } from '../../../local/duckdb-reader';

/**
 * The change view's SQL and the three change queries, the very text the stack declares, run by
 * DuckDB over three scheduled snapshots with known changes, laid out as the job writes them
 * (gzip NDJSON under sessions/dt=…/, manifests under manifests/dt=…/), through the reader view:
 *
 *   day 1  u1/a@10.0.0.1  u1/b@10.0.0.1  u2/c@10.0.0.2
 *   day 2  u1/a           u2/c           u2/d@10.0.0.2           (d started, b ended)
 *   day 3  u1/a                          u2/d    u1/e@10.9.9.9    (c ended; e started: u1 on a new IP)
 *          u3/f@10.0.0.3                                          (f started: a first-time user)
 *
 * Around them, what must not count: a failed run of day 3 with more lines (u4/z), an audit
 * snapshot between day 2 and day 3 holding only u1/a (were it a side of a pair, c and d would
 * show as ended and started again), and a superseded committed run of day 2 (u2/old).
 * The days are the two days before today and today: the named queries look back from
 * current_date, as in Athena.
 */
const PREFIX = 'moonkey';
const DB = 'moon_key_session_export';

const day = (offset: number) => {
  const d = new Date();
  d.setUTCHours(2, 0, 0, 0);
  d.setUTCDate(d.getUTCDate() + offset);
  return d;
};
const dtOf = (d: Date) => d.toISOString().slice(0, 10);
const slotOf = (d: Date) => `scheduled-${d.toISOString().slice(0, 19).replace(/[-:]/g, '')}Z`;
const DAYS = [day(-2), day(-1), day(0)];
const [DAY1, DAY2, DAY3] = DAYS.map((d) => ({ dt: dtOf(d), snapshotId: slotOf(d), at: d.getTime() / 1000 }));

type Snapshot = NonNullable<typeof DAY1>;

let dir: string;

function writeRun(
  snapshot: Snapshot,
  runId: string,
  status: 'committed' | 'failed',
  trigger: 'scheduled' | 'audit',
  sessions: readonly (readonly [user: string, id: string, ip: string])[],
): void {
  const lines = sessions.map(([user, id, ip]) =>
    JSON.stringify({
      id,
      user_id: user,
      started_at: snapshot.at - 3600,
      expires_at: snapshot.at + 86_400,
      last_active_at: snapshot.at - 60,
      factors: [],
      device_fingerprint: { user_agent: 'ua', ip },
      updated_at: snapshot.at - 60,
      created_at: snapshot.at - 3600,
      snapshot_id: snapshot.snapshotId,
      snapshot_at: snapshot.at,
      run_id: runId,
      observed_at: snapshot.at + 5,
    }),
  );
  const sessionsDir = path.join(dir, PREFIX, 'sessions', `dt=${snapshot.dt}`);
  const manifestsDir = path.join(dir, PREFIX, 'manifests', `dt=${snapshot.dt}`);
  mkdirSync(sessionsDir, { recursive: true });
  mkdirSync(manifestsDir, { recursive: true });
  writeFileSync(
    path.join(sessionsDir, `${snapshot.snapshotId}.${runId}.ndjson.gz`),
    gzipSync(`${lines.join('\n')}\n`),
  );
  writeFileSync(
    path.join(manifestsDir, `${snapshot.snapshotId}.${runId}.json`),
    JSON.stringify({
      manifest_version: 2,
      snapshot_id: snapshot.snapshotId,
      run_id: runId,
      trigger,
      status,
      dt: snapshot.dt,
      snapshot_at: snapshot.at,
    }),
  );
}

interface ChangeRow {
  change: string;
  snapshot_id: string;
  previous_snapshot_id: string;
  user_id: string;
  id: string;
}

const changes = (sql: string) =>
  queryLocalSnapshots<ChangeRow>(dir, PREFIX, sql, { database: DB }).then((rows) =>
    rows.map((r) => `${r.change} ${r.user_id}/${r.id} in ${r.snapshot_id} after ${r.previous_snapshot_id}`),
  );
const namedQuery = (id: string) => {
  const query = NAMED_QUERIES.find((q) => q.id === id);
  if (!query) throw new Error(`no named query ${id}`);
  return query.sql(DB);
};

beforeAll(() => {
  if (!DAY1 || !DAY2 || !DAY3) throw new Error('three days');
  dir = mkdtempSync(path.join(tmpdir(), 'change-view-'));
  writeRun(DAY1, 'r1-aaaaaa', 'committed', 'scheduled', [
    ['u1', 'a', '10.0.0.1'],
    ['u1', 'b', '10.0.0.1'],
    ['u2', 'c', '10.0.0.2'],
  ]);
  writeRun(DAY2, 'r2-aaaaaa', 'committed', 'scheduled', [
    ['u1', 'a', '10.0.0.1'],
    ['u2', 'c', '10.0.0.2'],
    ['u2', 'old', '10.0.0.2'],
  ]);
  // A rerun of day 2 that committed later: readers see this one only.
  writeRun(DAY2, 'r2-bbbbbb', 'committed', 'scheduled', [
    ['u1', 'a', '10.0.0.1'],
    ['u2', 'c', '10.0.0.2'],
    ['u2', 'd', '10.0.0.2'],
  ]);
  writeRun(
    { dt: DAY2.dt, snapshotId: `audit-${DAY2.dt.replaceAll('-', '')}T120000Z-ab12`, at: DAY2.at + 36_000 },
    'r2-cccccc',
    'committed',
    'audit',
    [['u1', 'a', '10.0.0.1']],
  );
  writeRun(DAY3, 'r3-aaaaaa', 'committed', 'scheduled', [
    ['u1', 'a', '10.0.0.1'],
    ['u2', 'd', '10.0.0.2'],
    ['u1', 'e', '10.9.9.9'],
    ['u3', 'f', '10.0.0.3'],
  ]);
  writeRun(DAY3, 'r3-zzzzzz', 'failed', 'scheduled', [['u4', 'z', '10.4.4.4']]);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('the change view SQL, run by DuckDB over three snapshots with known changes', () => {
  it('gives what started and ended between consecutive committed scheduled snapshots, nothing else', async () => {
    // Act
    const rows = await changes(
      `SELECT * FROM "${DB}"."session_changes" ORDER BY snapshot_at, change DESC, user_id, id`,
    );
    // Assess
    expect(rows).toEqual([
      `started u2/d in ${DAY2?.snapshotId} after ${DAY1?.snapshotId}`,
      `ended u1/b in ${DAY2?.snapshotId} after ${DAY1?.snapshotId}`,
      `started u1/e in ${DAY3?.snapshotId} after ${DAY2?.snapshotId}`,
      `started u3/f in ${DAY3?.snapshotId} after ${DAY2?.snapshotId}`,
      `ended u2/c in ${DAY3?.snapshotId} after ${DAY2?.snapshotId}`,
    ]);
  });

  it('returns the declared view columns, in order, with the session fields of the side that has it', async () => {
    const rows = await queryLocalSnapshots<Record<string, unknown>>(
      dir,
      PREFIX,
      `SELECT * FROM session_changes WHERE change = 'ended' ORDER BY snapshot_at LIMIT 1`,
      { database: DB },
    );
    expect(Object.keys(rows[0] ?? {})).toEqual(changeViewColumns.map((c) => c.name));
    expect(rows[0]).toMatchObject({
      dt: DAY2?.dt,
      previous_dt: DAY1?.dt,
      device_fingerprint: { user_agent: 'ua', ip: '10.0.0.1' },
    });
  });
});

describe('the change queries, as the stack names them, run by DuckDB', () => {
  it('"New sessions since the last snapshot" lists the latest snapshot’s started sessions', async () => {
    const rows = await queryLocalSnapshots<{ user_id: string; session_id: string }>(
      dir,
      PREFIX,
      namedQuery('NewSessions'),
      { database: DB },
    );
    expect(rows.map((r) => `${r.user_id}/${r.session_id}`)).toEqual(['u1/e', 'u3/f']);
  });

  it('"Sessions ended since the last snapshot" lists the sessions the latest snapshot no longer has', async () => {
    const rows = await queryLocalSnapshots<{ user_id: string; session_id: string; ip: string }>(
      dir,
      PREFIX,
      namedQuery('EndedSessions'),
      { database: DB },
    );
    expect(rows.map((r) => `${r.user_id}/${r.session_id}@${r.ip}`)).toEqual(['u2/c@10.0.0.2']);
  });

  it('"Users on an IP new for them" finds a known user on a new IP, not a first-time user', async () => {
    const rows = await queryLocalSnapshots<{ user_id: string; ip: string }>(
      dir,
      PREFIX,
      namedQuery('NewIpForUser'),
      { database: DB },
    );
    expect(rows).toEqual([{ user_id: 'u1', ip: '10.9.9.9' }]);
  });
});
