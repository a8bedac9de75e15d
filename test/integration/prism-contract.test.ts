/**
 * The contract test: the job against `prism mock -d` serving the vendor's OpenAPI document
 * (test/fixtures/moonkey-openapi.yaml), which generates random schema-valid responses.
 *
 * - Prism validates every request the job sends (path, query, bearer security) and logs the
 *   verdict; none may fail.
 * - Every session Prism generates is valid by the document, so the job must export it exactly as
 *   sent. Prism knows nothing about which user a session belongs to (each generated session has a
 *   random `user_id`), while the job quarantines a session listed under another user; so the job
 *   asks for exactly the users the generated sessions name. With `--seed`, every answer is the
 *   same generated list, so each session is exported once (under its own user) and the others'
 *   copies are `user_id_mismatch` rejects, never `schema` ones.
 */
import { join } from 'node:path';
import { CreateBucketCommand } from '@aws-sdk/client-s3';
import { sessionListItemSchema } from '../../lambda/moonkey/session-record';
import { type ChildServer, freePort, startChildServer } from '../../local/child-server';
import { LOCAL_CREDENTIALS, LOCAL_REGION } from '../../local/dynamodb-local';
import { localS3Client } from '../../local/local-stack';
import { type S3Server, startS3Server } from '../../local/s3-server';
import { runViaStateMachine } from '../helpers/run-via-state-machine';
import { readRecords } from '../helpers/snapshot-reader';

const ROOT = join(__dirname, '../..');
const BUCKET = 'contract-bucket';
const KEY = 'sk_test_contract_key';
const SESSIONS_PATH = '/v1/auth/sessions/list';

let prism: ChildServer;
let prismUrl: string;
/** Everything Prism printed since the last reset (ChildServer keeps only the last lines). */
let prismLog = '';
let s3: S3Server;
let awsEnv: Record<string, string>;

beforeAll(async () => {
  const port = await freePort();
  prismUrl = `http://127.0.0.1:${port}`;
  [prism, s3] = await Promise.all([
    startChildServer({
      name: 'prism mock',
      command: join(ROOT, 'node_modules/.bin/prism'),
      args: [
        'mock',
        '-d',
        '--seed',
        'moonkey-contract',
        '-h',
        '127.0.0.1',
        '-p',
        String(port),
        join(ROOT, 'test/fixtures/moonkey-openapi.yaml'),
      ],
      ready: async () => (await fetch(`${prismUrl}${SESSIONS_PATH}?user_id=probe`)).status > 0,
      timeoutMs: 60_000,
    }),
    startS3Server(),
  ]);
  const keep = (chunk: Buffer) => {
    prismLog += chunk.toString();
  };
  prism.process.stdout?.on('data', keep);
  prism.process.stderr?.on('data', keep);
  const client = localS3Client(s3.endpoint);
  await client.send(new CreateBucketCommand({ Bucket: BUCKET }));
  client.destroy();
  awsEnv = {
    AWS_REGION: LOCAL_REGION,
    AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
    AWS_ENDPOINT_URL_S3: s3.endpoint,
  };
}, 90_000);

afterAll(async () => {
  await Promise.all([prism?.stop(), s3?.stop()]);
});

describe('the job against prism mock -d on the OpenAPI document', () => {
  it('sends only requests Prism validates, and exports every session it generates exactly as sent', async () => {
    // Prepare: what Prism generates (the same list for every request, given the seed).
    const probe = await fetch(`${prismUrl}${SESSIONS_PATH}?user_id=probe`, {
      headers: { authorization: `Bearer ${KEY}` },
    });
    const generated = ((await probe.json()) as { sessions: Record<string, unknown>[] }).sessions;
    expect(generated.length).toBeGreaterThan(0);
    // The document's own schema (not ours) generated these; ours must agree with every one.
    for (const session of generated) expect(sessionListItemSchema.safeParse(session).success).toBe(true);
    const users = [...new Set(generated.map((s) => String(s.user_id)))];
    // Give Prism a moment to print the probe's lines, then listen to the job's requests only.
    await new Promise((resolve) => setTimeout(resolve, 200));
    prismLog = '';

    // Act
    const outcome = await runViaStateMachine(
      {
        ...awsEnv,
        USERS_TABLE_NAME: 'not-scanned',
        EXPORT_BUCKET_NAME: BUCKET,
        EXPORT_PREFIX: 'contract',
        MOONKEY_API_URL: prismUrl,
        MOONKEY_API_KEY: KEY,
        S3_FORCE_PATH_STYLE: 'true',
        METRICS_ENABLED: 'false',
        // Each user's answer also lists the other users' sessions: those copies are user_id_mismatch rejects.
        EXPORT_REJECTED_ITEMS_TOLERANCE: '100%',
      },
      { reason: 'contract test', userIds: users },
      { workBudgetMs: 900_000 },
    );

    // Assess: Prism's verdict on each of the job's requests.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(prismLog).not.toMatch(/did not pass the validation rules|violation|✖/i);
    expect(prismLog.match(/The request passed the validation rules/g)).toHaveLength(users.length);
    expect(outcome.manifest?.status).toBe('committed');
    expect(outcome.manifest?.counts).toMatchObject({ requests: users.length, users_failed: 0 });

    // Every generated session exported once, exactly as Prism sent it; no schema rejects.
    const s3Client = localS3Client(s3.endpoint);
    const exported = await readRecords(s3Client, BUCKET, 'contract/sessions/');
    const rejects = await readRecords(s3Client, BUCKET, 'contract/rejects/');
    s3Client.destroy();
    const byId = (a: Record<string, unknown>, b: Record<string, unknown>) =>
      String(a.id).localeCompare(String(b.id));
    expect(
      exported.map(({ snapshot_id: _i, snapshot_at: _a, run_id: _r, observed_at: _o, ...s }) => s).sort(byId),
    ).toEqual([...generated].sort(byId));
    expect(rejects.filter((r) => r.reason !== 'user_id_mismatch')).toEqual([]);
    expect(rejects).toHaveLength(generated.length * users.length - generated.length);
  });
});
