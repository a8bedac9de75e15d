import { FILE_KINDS } from '../../../lambda/core/facts';
import { buildManifest, emptyCounts, type RunCounts, sumCounts } from '../../../lambda/snapshot/manifest';
import { SnapshotKeys } from '../../../lambda/snapshot/snapshot-keys';

describe('sumCounts', () => {
  it('sums every count of the steps, users not found included', () => {
    const step = (users_not_found: number, users_processed: number): RunCounts => ({
      ...emptyCounts(),
      users_not_found,
      users_processed,
    });

    expect(sumCounts([step(2, 100), step(0, 50), step(5, 70)])).toMatchObject({
      users_not_found: 7,
      users_processed: 220,
    });
  });

  it('reads a count a step stored by an older version lacks as 0, not NaN', () => {
    const { users_not_found: _, ...older } = { ...emptyCounts(), users_processed: 10 };

    const total = sumCounts([
      older as RunCounts,
      { ...emptyCounts(), users_not_found: 3, users_processed: 5 },
    ]);

    expect(total.users_not_found).toBe(3);
    expect(total.users_processed).toBe(15);
  });
});

describe('buildManifest', () => {
  const snapshotAt = Date.parse('2026-12-01T02:00:00Z') / 1000;
  const keys = new SnapshotKeys('p', 'scheduled-20261201T020000Z', snapshotAt, 'r20261201T020001000Z-abcdef');
  const run = {
    snapshotId: keys.snapshotId,
    runId: keys.runId,
    trigger: 'scheduled' as const,
    reason: undefined,
    snapshotAt,
    startedAt: '2026-12-01T02:00:01.000Z',
  };
  // One file of each kind, in the order a run finishes them (not the kinds' order).
  const files = [...FILE_KINDS].reverse().map((kind, i) => ({
    key: keys.fileKey(kind, 's000-00000-x', 0),
    uploadId: `u${i}`,
    parts: [],
    records: i + 1,
    bytes: 100 * (i + 1),
  }));
  const parts = {
    status: 'committed' as const,
    counts: emptyCounts(),
    failedUsers: [],
    files,
    settings: { concurrency: 16 },
    pii: { copies: 'raw' as const, policy: null, key_fingerprint: null },
  };

  it('lists each file under its own kind, with its bytes and records and nothing of the upload', () => {
    const manifest = buildManifest(run, { bucket: 'b', keys }, parts, Date.parse('2026-12-01T02:10:01Z'));

    const listed = {
      sessions: 'sessions',
      rejects: 'rejects',
      failed_users: 'failed-users',
      pseudonymized_sessions: 'pseudonymized/sessions',
      pseudonymized_rejects: 'pseudonymized/rejects',
    } as const;
    for (const [field, kind] of Object.entries(listed)) {
      const file = files.find((f) => f.key.startsWith(keys.runFilePrefix(kind)));
      expect(manifest.files[field as keyof typeof listed]).toEqual([
        { key: file?.key, bytes: file?.bytes, records: file?.records },
      ]);
    }
  });

  it('says where the table reads, how long the run took, and a null reason for a scheduled run', () => {
    const manifest = buildManifest(run, { bucket: 'b', keys }, parts, Date.parse('2026-12-01T02:10:01Z'));

    expect(manifest).toMatchObject({
      table_location: 's3://b/p/sessions/',
      duration_ms: 600_000,
      finished_at: '2026-12-01T02:10:01.000Z',
      reason: null,
      error: null,
      dt: '2026-12-01',
    });
    expect(buildManifest({ ...run, reason: 'audit for SEC-1' }, { bucket: 'b', keys }, parts).reason).toBe(
      'audit for SEC-1',
    );
  });
});
