/**
 * UserExport's failed-user path over real NDJSON writers on the in-memory S3: what each failed
 * user leaves in the failed-users file (every line names the run) and in the step's list (capped).
 */
import { gunzipSync } from 'node:zlib';
import pLimit from 'p-limit';
import { parseConfig } from '../../../lambda/core/config';
import { unlimited } from '../../../lambda/flow/rate-limiter';
import { Admission } from '../../../lambda/run/admission';
import { RAW_ONLY } from '../../../lambda/run/pii-copies';
import { UserExport } from '../../../lambda/run/user-export';
import { completeFiles } from '../../../lambda/snapshot/commit';
import { emptyCounts, type FailedUser, MANIFEST_FAILED_USERS_LIMIT } from '../../../lambda/snapshot/manifest';
import { NdjsonWriter } from '../../../lambda/snapshot/ndjson-writer';
import { FILE_KINDS, type FileKind } from '../../../lambda/snapshot/snapshot-keys';
import { captureLogger } from '../../helpers/capture-logger';
import { MemoryS3 } from '../../helpers/memory-s3';

const RUN = {
  snapshotId: 'scheduled-20261126T020000Z',
  runId: 'r20261126T020000000Z-abcdef',
  snapshotAt: 1_790_000_000,
};

/** `users` users whose every call fails with a plain error (not retried: one attempt), through one UserExport. */
async function exportFailing(users: number) {
  const s3 = new MemoryS3();
  const config = parseConfig({
    USERS_TABLE_NAME: 'users',
    EXPORT_BUCKET_NAME: 'exports',
    MOONKEY_API_KEY: 'sk_test_x',
    EXPORT_MAX_ATTEMPTS: '1',
    EXPORT_FAILED_USERS_TOLERANCE: '100%',
  });
  const writers = Object.fromEntries(
    FILE_KINDS.map((kind) => [
      kind,
      new NdjsonWriter({
        s3: s3.client,
        bucket: 'b',
        keyForFile: (i) => `p/${kind}/${i}.ndjson.gz`,
        targetFileBytes: 1024 * 1024,
        partBytes: 64 * 1024,
        gzipLevel: 1,
      }),
    ]),
  ) as Record<FileKind, NdjsonWriter>;
  const failedUsers: FailedUser[] = [];
  const counts = emptyCounts();
  const admission = new Admission(10_000, () => 8);
  const runFailures: Error[] = [];
  const userExport = new UserExport({
    config,
    run: RUN,
    fetchSessions: async (userId) => {
      throw Object.assign(new Error(`MoonKey answered 500 for ${userId}`), { name: 'ApiServerError' });
    },
    copies: RAW_ONLY,
    apiCalls: pLimit(8),
    rateLimiter: unlimited,
    aimd: undefined,
    admission,
    writers,
    counts,
    failedUsers,
    logger: captureLogger(),
    signal: new AbortController().signal,
    failRun: (error) => runFailures.push(error),
  });

  for (let i = 0; i < users; i++) userExport.start(`u-${i}`);
  await admission.drained();
  const files = (await Promise.all(FILE_KINDS.map((kind) => writers[kind].close()))).flat();
  await completeFiles(s3.client, 'b', files);
  const lines = files
    .filter((f) => f.key.startsWith('p/failed-users/'))
    .flatMap((f) =>
      gunzipSync(s3.bytesOf(f.key) as Buffer)
        .toString()
        .split('\n')
        .filter(Boolean),
    )
    .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { counts, failedUsers, lines, runFailures };
}

describe('UserExport, a user that fails', () => {
  it('writes one failed-users line per failed user, each naming the snapshot and the run', async () => {
    const { counts, lines, runFailures } = await exportFailing(3);

    expect(runFailures).toEqual([]);
    expect(counts).toMatchObject({ users_failed: 3, users_processed: 3, requests: 3 });
    expect(lines.sort((a, b) => String(a.user_id).localeCompare(String(b.user_id)))).toEqual(
      [0, 1, 2].map((i) => ({
        snapshot_id: RUN.snapshotId,
        run_id: RUN.runId,
        user_id: `u-${i}`,
        error: `MoonKey answered 500 for u-${i}`,
        error_type: 'ApiServerError',
      })),
    );
  });

  it(`lists at most ${MANIFEST_FAILED_USERS_LIMIT} failed users for the manifest, while the file has every one, each with run_id`, async () => {
    const { counts, failedUsers, lines } = await exportFailing(MANIFEST_FAILED_USERS_LIMIT + 1);

    expect(counts.users_failed).toBe(MANIFEST_FAILED_USERS_LIMIT + 1);
    expect(failedUsers).toHaveLength(MANIFEST_FAILED_USERS_LIMIT);
    expect(lines).toHaveLength(MANIFEST_FAILED_USERS_LIMIT + 1);
    expect(lines.every((line) => line.run_id === RUN.runId && line.snapshot_id === RUN.snapshotId)).toBe(
      true,
    );
  });
});
