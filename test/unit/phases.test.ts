/**
 * The Commit phase over the in-memory S3, from stored Work steps: how the failed users of every
 * step become the manifest's list and its `failed_users_truncated` flag.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { parseConfig } from '../../lambda/core/config';
import { noMetrics } from '../../lambda/core/observability';
import type { ExportContext } from '../../lambda/run/job-context';
import { commitPhase, type RunRef } from '../../lambda/run/phases';
import type { RunPlan } from '../../lambda/run/run-plan';
import { savePlan, saveStep } from '../../lambda/run/run-state';
import { emptyCounts, type FailedUser, MANIFEST_FAILED_USERS_LIMIT } from '../../lambda/snapshot/manifest';
import { newRunId } from '../../lambda/snapshot/snapshot-id';
import { SnapshotKeys } from '../../lambda/snapshot/snapshot-keys';
import { captureLogger } from '../helpers/capture-logger';
import { MemoryS3 } from '../helpers/memory-s3';

const AT = Date.parse('2026-11-26T02:00:00Z') / 1000;

/**
 * A planned run whose segments' Work steps (one per entry) failed `failed[i]` users each and
 * listed `listed[i]` of them (a step lists at most the manifest limit), committed by commitPhase.
 */
async function commitWithFailures(failed: readonly number[], listed: readonly number[] = failed) {
  const s3 = new MemoryS3();
  const config = parseConfig({
    USERS_TABLE_NAME: 'users',
    EXPORT_BUCKET_NAME: 'exports',
    MOONKEY_API_KEY: 'sk_test_x',
    EXPORT_FAILED_USERS_TOLERANCE: '100%',
  });
  const ctx: ExportContext = {
    config,
    s3: s3.client,
    dynamodb: {} as DynamoDBClient,
    fetchSessions: async () => {
      throw new Error('Commit calls no one');
    },
    logger: captureLogger(),
    metrics: noMetrics,
  };
  // A run id of its own per call: plans are cached by key for the life of the module.
  const plan: RunPlan = {
    snapshotId: 'scheduled-20261126T020000Z',
    runId: newRunId(new Date('2026-11-26T02:00:00Z')),
    startedAt: '2026-11-26T02:00:01.000Z',
    snapshotAt: AT,
    trigger: 'scheduled',
    reason: undefined,
    users: { kind: 'scan' },
    dryRun: false,
  };
  const keys = new SnapshotKeys(config.prefix, plan.snapshotId, plan.snapshotAt, plan.runId);
  await savePlan(s3.client, config.bucket, keys.planKey(), {
    plan,
    totalSegments: failed.length,
    settings: {},
  });
  let user = 0;
  const tails: string[] = [];
  for (const [segment, count] of failed.entries()) {
    const failedUsers: FailedUser[] = Array.from({ length: listed[segment] ?? count }, () => ({
      user_id: `u-${user++}`,
      error: 'MoonKey answered 500',
      error_type: 'ApiServerError',
    }));
    const key = keys.workStepKey(segment, 0, 'a');
    await saveStep(s3.client, config.bucket, key, {
      prev: null,
      segment,
      step: 0,
      attempt: 'a',
      files: [],
      counts: { ...emptyCounts(), users_scanned: count, users_processed: count, users_failed: count },
      failedUsers,
      pending: [],
      next: null,
    });
    tails.push(key);
  }
  const run: RunRef = {
    snapshotId: plan.snapshotId,
    runId: plan.runId,
    dt: keys.dt,
    planKey: keys.planKey(),
    dryRun: false,
  };
  return commitPhase(ctx, run, tails);
}

describe('commitPhase, failed users', () => {
  it(`lists every failed user and is not truncated at exactly ${MANIFEST_FAILED_USERS_LIMIT}, summed over the steps`, async () => {
    const { manifest } = await commitWithFailures([600, 400]);

    expect(manifest.status).toBe('committed');
    expect(manifest.counts.users_failed).toBe(MANIFEST_FAILED_USERS_LIMIT);
    expect(manifest.failed_users).toHaveLength(MANIFEST_FAILED_USERS_LIMIT);
    expect(manifest.failed_users_truncated).toBe(false);
  });

  it(`lists the first ${MANIFEST_FAILED_USERS_LIMIT} and says truncated one above`, async () => {
    const { manifest } = await commitWithFailures([600, 401]);

    expect(manifest.counts.users_failed).toBe(MANIFEST_FAILED_USERS_LIMIT + 1);
    expect(manifest.failed_users).toHaveLength(MANIFEST_FAILED_USERS_LIMIT);
    expect(manifest.failed_users_truncated).toBe(true);
  });

  it('says truncated when a step counted more failed users than it listed', async () => {
    const { manifest } = await commitWithFailures([1500], [MANIFEST_FAILED_USERS_LIMIT]);

    expect(manifest.failed_users).toHaveLength(MANIFEST_FAILED_USERS_LIMIT);
    expect(manifest.failed_users_truncated).toBe(true);
  });

  it('is not truncated with no failed users, nor with a few', async () => {
    expect((await commitWithFailures([0])).manifest).toMatchObject({
      failed_users: [],
      failed_users_truncated: false,
    });
    expect((await commitWithFailures([2, 1])).manifest.failed_users.map((u) => u.user_id)).toEqual([
      'u-0',
      'u-1',
      'u-2',
    ]);
  });
});
