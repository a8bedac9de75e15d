import type { S3Client } from '@aws-sdk/client-s3';
import { z } from 'zod';
import { OUTPUTS } from '../infra/stack-outputs';
import { getJson } from '../lambda/snapshot/s3-objects';
import type { AuditRun } from './smoke-audit';
import { awsCallFix } from './smoke-fixes';
import { type DeployedStack, fail, type Outcome, pass } from './smoke-steps';

/** What the later steps need of the committed manifest (lambda/snapshot/manifest.ts). */
const manifestSchema = z.object({
  snapshot_id: z.string(),
  run_id: z.string(),
  status: z.string(),
  dt: z.string().regex(/^\d{4}-\d{2}-\d{2}$/),
  counts: z.object({
    users_processed: z.number(),
    users_with_sessions: z.number(),
    sessions_exported: z.number(),
    users_failed: z.number(),
    // Absent in manifests of versions before deleted users were counted.
    users_not_found: z.number().default(0),
  }),
  files: z.object({ sessions: z.array(z.object({ key: z.string(), records: z.number() })) }),
  failed_users: z.array(z.object({ user_id: z.string(), error: z.string(), error_type: z.string() })),
  // Which copies the run wrote; manifests of versions before PII controls wrote the raw copy only.
  pii: z.object({ copies: z.enum(['raw', 'pseudonymized', 'both']) }).default({ copies: 'raw' }),
});
export type CommittedManifest = z.infer<typeof manifestSchema>;

/** Step 4: the run's manifest as S3 holds it: committed, this run's, no failed user, counts that add up. */
export async function readManifest(
  s3: S3Client,
  stack: DeployedStack,
  run: AuditRun,
): Promise<Outcome<CommittedManifest>> {
  const bucket = stack.outputs[OUTPUTS.bucketName] ?? '';
  const where = `s3://${bucket}/${run.manifestKey}`;
  let raw: unknown;
  try {
    raw = await getJson<unknown>(s3, bucket, run.manifestKey);
  } catch (error) {
    const cause = (error as Error).cause ?? error;
    return fail(
      `reading ${where} failed: ${(cause as Error).message}`,
      awsCallFix(cause, `s3:GetObject on ${where} (and kms:Decrypt on the bucket's key if it has one)`),
    );
  }
  if (raw === undefined) {
    return fail(
      `the run says it committed ${where}, but the bucket has no such object`,
      `check that ${OUTPUTS.bucketName} is the bucket the function writes (existingBucketName), and the function's logs`,
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    return fail(
      `${where} is not a manifest: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'deploy this version of the project (its job writes manifest_version 2)',
    );
  }
  const manifest = parsed.data;
  const { counts } = manifest;
  if (manifest.status !== 'committed') {
    return fail(`${where} says ${manifest.status}`, 'read its error field, and the execution history');
  }
  if (manifest.snapshot_id !== run.snapshotId || manifest.run_id !== run.runId) {
    return fail(
      `${where} names snapshot ${manifest.snapshot_id} run ${manifest.run_id}, the execution ${run.snapshotId} run ${run.runId}`,
      'deploy this version of the project: the manifest key and its content disagree',
    );
  }
  if (counts.users_failed > 0) {
    const first = manifest.failed_users[0];
    return fail(
      `${counts.users_failed} of ${counts.users_processed} users failed${first ? ` (${first.user_id}: ${first.error_type}: ${first.error})` : ''}`,
      `every audited user must export: see failed_users in ${where}; check the prop apiUrl and that the users exist in MoonKey`,
    );
  }
  if (counts.users_processed > 0 && counts.users_not_found === counts.users_processed) {
    return fail(
      `MoonKey answered 404 user_not_found for all ${counts.users_processed} audited users, taken from the users table`,
      'the function asks another app or environment than the table belongs to: check the prop apiUrl and that the key in the API key secret is a key of that app',
    );
  }
  const listed = manifest.files.sessions.reduce((sum, file) => sum + file.records, 0);
  if (listed !== counts.sessions_exported) {
    return fail(
      `${where} counts ${counts.sessions_exported} sessions but its files list ${listed} records`,
      "the manifest contradicts itself: keep it and the run's files, and read the function's logs of the run",
    );
  }
  const files = manifest.files.sessions.length;
  const none =
    counts.sessions_exported === 0
      ? '; no sessions, so the Athena counts below only show that the queries run: audit users with live sessions (--users <id>,<id>)'
      : '';
  return pass(
    manifest,
    `committed ${where}: ${counts.users_processed} users${counts.users_not_found > 0 ? ` (${counts.users_not_found} not found in MoonKey)` : ''}, ${counts.users_with_sessions} with sessions, ${counts.sessions_exported} sessions in ${files} file(s)${none}`,
  );
}
