/**
 * The pseudonymized copy through the deployed state machine's definition (runViaStateMachine),
 * the real handler, DynamoDB Local, the S3 server and the fake MoonKey API. What is checked is
 * what S3 holds: every object a run leaves under its prefix, read back byte for byte, must hold
 * no raw value of a pseudonymized field of any input session, nor of an invalid item, nor of a
 * 400 answer's body; and the same holds for every log line and metrics record.
 */
import type { RunMetrics } from '../../lambda/core/observability';
import { createTokenizer } from '../../lambda/pii/hmac-token';
import { keyFingerprint } from '../../lambda/pii/key-fingerprint';
import { normalizeField } from '../../lambda/pii/normalize-field';
import {
  describePolicy,
  PII_FIELDS,
  PII_PRESETS,
  type PiiField,
  type PiiPresetName,
} from '../../lambda/pii/pii-policy';
import { listKeys } from '../../lambda/snapshot/s3-objects';
import { sessionsFor } from '../../local/fake-sessions';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { type S3FaultProxy, startS3FaultProxy } from '../../local/s3-fault-proxy';
import { createUsersTable, seedUsers } from '../../local/seed-users';
import { runViaStateMachine } from '../helpers/run-via-state-machine';
import { readObjects, readRecords, readVisibleSessions } from '../helpers/snapshot-reader';

const BASE_TIME = 1_764_115_200;
const TABLE = 'users-pii';
const USER_COUNT = 80;
const SLOT = '2026-11-26T02:00:00Z';
const SCHEDULED = { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time: SLOT, detail: {} };
const KEY = 'an-hmac-key-for-tests-of-forty-chars!!!!';
const OTHER_KEY = 'another-hmac-key-for-tests-of-forty-chrs';
/** In an invalid item (no id) and in a 400 answer's body: neither may reach a pseudonymized output. */
const REJECT_PHONE = '+1 (415) 555-0199';
const REJECT_EMAIL = 'Quarantined.Person@Example.org';
const ERROR_BODY_PHONE = '+14155550177';

let stack: LocalStack;
let proxy: S3FaultProxy;
let users: string[];
let prefixCounter = 0;

beforeAll(async () => {
  stack = await startLocalStack({ api: { baseTime: BASE_TIME } });
  proxy = await startS3FaultProxy(stack.s3.endpoint);
  await createUsersTable(stack.dynamodbClient, TABLE);
  users = await seedUsers(stack.dynamodbClient, TABLE, USER_COUNT);
}, 120_000);

afterAll(async () => {
  await proxy?.close();
  await stack?.stop();
});

beforeEach(() => {
  proxy.setRules([]);
  stack.api.configure({ faults: {}, invalidItemUsers: [], latencyMs: 0 });
});

const invalidItem = {
  user_id: 'x',
  factors: [
    { type: 'otp', delivery_channel: 'sms', method: { phone_number: REJECT_PHONE, email: REJECT_EMAIL } },
  ],
};

/** One run; user 0 answers an invalid item beside its sessions, user 1 a 400 whose body holds a phone number. */
async function run(prefix: string, env: Record<string, string>, s3Endpoint = stack.s3.endpoint) {
  const [withInvalid = '', failing = ''] = users;
  stack.api.configure({
    faults: {
      [withInvalid]: [{ kind: 'invalid-items', items: [invalidItem] }],
      [failing]: [
        { kind: 'status', status: 400, body: JSON.stringify({ error: `bad phone ${ERROR_BODY_PHONE}` }) },
      ],
    },
  });
  const metrics: RunMetrics[] = [];
  const result = await runViaStateMachine(
    {
      ...stack.env,
      AWS_ENDPOINT_URL_S3: s3Endpoint,
      USERS_TABLE_NAME: TABLE,
      EXPORT_PREFIX: prefix,
      EXPORT_FAILED_USERS_TOLERANCE: '1',
      EXPORT_REJECTED_ITEMS_TOLERANCE: '5',
      EXPORT_TARGET_FILE_BYTES: '4096',
      EXPORT_RETRY_BASE_DELAY_MS: '5',
      EXPORT_RETRY_MAX_DELAY_MS: '20',
      ...env,
    },
    SCHEDULED,
    // Lambda's 15 minutes per Work: these runs are about their output, not continuations.
    { metrics: (m) => metrics.push(m), workBudgetMs: 900_000 },
  );
  return { ...result, metrics };
}

/** Every value of `fields` in the input sessions, as sent and normalized, non-empty. */
function rawValues(fields: readonly PiiField[]): Set<string> {
  const values = new Set<string>();
  const add = (field: PiiField, value: unknown) => {
    if (typeof value !== 'string' || value === '') return;
    values.add(value);
    values.add(normalizeField(field, value));
  };
  for (const userId of users)
    for (const session of sessionsFor(userId, BASE_TIME)) {
      for (const factor of session.factors)
        for (const field of fields) add(field, (factor.method as Record<string, unknown>)[field]);
      for (const field of fields) add(field, (session.device_fingerprint as Record<string, unknown>)[field]);
    }
  if (fields.includes('phone_number')) {
    for (const phone of [REJECT_PHONE, normalizeField('phone_number', REJECT_PHONE), ERROR_BODY_PHONE])
      values.add(phone);
    values.add('555-0199');
    values.add('5550177');
  }
  if (fields.includes('email'))
    for (const email of [REJECT_EMAIL, REJECT_EMAIL.toLowerCase()]) values.add(email);
  return values;
}

function leaks(texts: Iterable<string>, values: Set<string>): string[] {
  const found: string[] = [];
  for (const text of texts) for (const value of values) if (text.includes(value)) found.push(value);
  return [...new Set(found)];
}

const withoutRunFields = (record: Record<string, unknown>) => {
  const { snapshot_id, run_id, snapshot_at, observed_at, ...rest } = record;
  return rest;
};
const byId = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  String(a.id).localeCompare(String(b.id));

/** Every session exported: all users' but the one whose call fails. */
const truth = () => users.filter((_, i) => i !== 1).flatMap((id) => sessionsFor(id, BASE_TIME));

describe.each(Object.keys(PII_PRESETS) as PiiPresetName[])(
  'EXPORT_COPIES=pseudonymized under the %s preset',
  (preset) => {
    const policy = PII_PRESETS[preset];
    const pseudonymized = PII_FIELDS.filter((field) => policy[field].kind !== 'keep');

    it('stores no raw value of a pseudonymized field in any object, log line or metric, and every session once', async () => {
      const prefix = `pii${++prefixCounter}`;

      const result = await run(prefix, {
        EXPORT_COPIES: 'pseudonymized',
        EXPORT_PII_POLICY: preset,
        EXPORT_PII_KEY: KEY,
      });

      expect(result.error).toBeUndefined();
      expect(result.execution.status).toBe('SUCCEEDED');
      const objects = await readObjects(stack.s3Client, stack.bucket, `${prefix}/`);
      const keys = [...objects.keys()];
      // Nothing raw was stored: only the pseudonymized copy, the manifest and the failed-users file.
      expect(
        keys.filter(
          (key) => !/^pii\d+\/(pseudonymized\/(sessions|rejects)|manifests|failed-users)\//.test(key),
        ),
      ).toEqual([]);
      expect(keys.some((key) => key.startsWith(`${prefix}/pseudonymized/sessions/`))).toBe(true);
      expect(keys.some((key) => key.startsWith(`${prefix}/pseudonymized/rejects/`))).toBe(true);
      const values = rawValues(pseudonymized);
      expect(values.size).toBeGreaterThan(50);
      expect(leaks(objects.values(), values)).toEqual([]);
      expect(leaks(result.logger.lines, values)).toEqual([]);
      expect(leaks([JSON.stringify(result.metrics)], values)).toEqual([]);
      expect(JSON.stringify([...objects.values(), ...result.logger.lines])).not.toContain(KEY);

      const visible = await readVisibleSessions(
        stack.s3Client,
        stack.bucket,
        prefix,
        'pseudonymized/sessions',
      );
      expect(visible.map((r) => r.id).sort()).toEqual(
        truth()
          .map((s) => s.id)
          .sort(),
      );
      expect(result.manifest?.pii).toEqual({
        copies: 'pseudonymized',
        policy: describePolicy(policy),
        key_fingerprint: keyFingerprint(Buffer.from(KEY)),
      });
      expect(result.manifest?.files.sessions).toEqual([]);
      expect(result.manifest?.files.pseudonymized_sessions.length).toBeGreaterThan(1);
      expect(result.manifest?.failed_users).toEqual([
        expect.objectContaining({
          user_id: users[1],
          error: expect.stringContaining('HTTP 400 (the response text is withheld'),
        }),
      ]);
    });
  },
);

describe('tokens', () => {
  it('are the HMAC of the normalized value: the same in two runs under one key, different under another key', async () => {
    const env = { EXPORT_COPIES: 'pseudonymized', EXPORT_PII_POLICY: 'pseudonymize' };
    const first = `pii${++prefixCounter}`;
    const second = `pii${++prefixCounter}`;
    const rotated = `pii${++prefixCounter}`;
    await run(first, { ...env, EXPORT_PII_KEY: KEY });
    await run(second, { ...env, EXPORT_PII_KEY: KEY });
    const other = await run(rotated, { ...env, EXPORT_PII_KEY: OTHER_KEY });

    const read = async (prefix: string) =>
      (await readVisibleSessions(stack.s3Client, stack.bucket, prefix, 'pseudonymized/sessions'))
        .map(withoutRunFields)
        .sort(byId);
    const [a, b, c] = [await read(first), await read(second), await read(rotated)];
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
    expect(other.manifest?.pii.key_fingerprint).toBe(keyFingerprint(Buffer.from(OTHER_KEY)));

    const tokenize = createTokenizer(Buffer.from(KEY));
    const session = truth().find((s) => s.factors.some((f) => f.method.phone_number !== undefined));
    const factor = session?.factors.find((f) => f.method.phone_number !== undefined);
    const written = a.find((r) => r.id === session?.id) as {
      factors: { method: { phone_number?: string } }[];
    };
    expect(written.factors.map((f) => f.method.phone_number)).toContain(
      tokenize(normalizeField('phone_number', factor?.method.phone_number ?? '')),
    );
    // The empty IP stays empty: it is not one token shared by every unknown IP.
    const emptyIp = truth().filter((s) => s.device_fingerprint.ip === '');
    expect(emptyIp.length).toBeGreaterThan(0);
    for (const s of emptyIp)
      expect(
        (a.find((r) => r.id === s.id) as { device_fingerprint: { ip: string } }).device_fingerprint.ip,
      ).toBe('');
  });
});

describe('quarantine in pseudonymized mode', () => {
  it('writes the invalid item with the policy applied and no raw rejects anywhere', async () => {
    const prefix = `pii${++prefixCounter}`;

    await run(prefix, {
      EXPORT_COPIES: 'pseudonymized',
      EXPORT_PII_POLICY: 'pseudonymize',
      EXPORT_PII_KEY: KEY,
    });

    expect(await listKeys(stack.s3Client, stack.bucket, `${prefix}/rejects/`)).toEqual([]);
    const [reject, ...more] = await readRecords(
      stack.s3Client,
      stack.bucket,
      `${prefix}/pseudonymized/rejects/`,
    );
    expect(more).toEqual([]);
    const tokenize = createTokenizer(Buffer.from(KEY));
    expect(reject).toMatchObject({ user_id: users[0], reason: 'schema', item_withheld: null });
    expect(reject).not.toHaveProperty('item_raw');
    expect(JSON.parse(String(reject?.item))).toEqual({
      user_id: 'x',
      factors: [
        {
          type: 'otp',
          delivery_channel: 'sms',
          method: {
            phone_number: tokenize('+14155550199'),
            email: tokenize('quarantined.person@example.org'),
          },
        },
      ],
    });
  });
});

describe('EXPORT_COPIES=both', () => {
  it('writes both copies from the same responses, committed by one manifest', async () => {
    const prefix = `pii${++prefixCounter}`;

    const result = await run(prefix, {
      EXPORT_COPIES: 'both',
      EXPORT_PII_POLICY: 'analytics',
      EXPORT_PII_KEY: KEY,
    });

    expect(result.execution.status).toBe('SUCCEEDED');
    const raw = (await readVisibleSessions(stack.s3Client, stack.bucket, prefix)).sort(byId);
    const pseudo = (
      await readVisibleSessions(stack.s3Client, stack.bucket, prefix, 'pseudonymized/sessions')
    ).sort(byId);
    expect(raw.map(withoutRunFields)).toEqual(truth().sort(byId));
    expect(pseudo.map((r) => [r.id, r.run_id, r.observed_at])).toEqual(
      raw.map((r) => [r.id, r.run_id, r.observed_at]),
    );
    expect(
      leaks(
        (await readObjects(stack.s3Client, stack.bucket, `${prefix}/pseudonymized/`)).values(),
        rawValues(['phone_number', 'email', 'wallet_public_address', 'provider_subject', 'ip']),
      ),
    ).toEqual([]);
    const rawRejects = await readRecords(stack.s3Client, stack.bucket, `${prefix}/rejects/`);
    expect(String(rawRejects[0]?.item_raw)).toContain(REJECT_PHONE);
    expect(result.manifest?.pii.copies).toBe('both');
    expect(result.manifest?.files.sessions.length).toBeGreaterThan(0);
    expect(result.manifest?.files.pseudonymized_sessions.length).toBeGreaterThan(0);
  });

  it('a failing Complete on a rerun leaves both views showing the earlier run, whole', async () => {
    const prefix = `pii${++prefixCounter}`;
    const env = { EXPORT_COPIES: 'both', EXPORT_PII_POLICY: 'minimal', EXPORT_PII_KEY: KEY };
    const first = await run(prefix, env, proxy.endpoint);
    expect(first.manifest?.status).toBe('committed');
    const rawBefore = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
    const pseudoBefore = await readVisibleSessions(
      stack.s3Client,
      stack.bucket,
      prefix,
      'pseudonymized/sessions',
    );
    const objectsBefore = await readObjects(
      stack.s3Client,
      stack.bucket,
      `${prefix}/pseudonymized/sessions/`,
    );
    const rawObjectsBefore = await readObjects(stack.s3Client, stack.bucket, `${prefix}/sessions/`);
    // Several files per copy, so a Complete can fail after others of the same copy landed.
    expect(first.manifest?.files.pseudonymized_sessions.length).toBeGreaterThanOrEqual(2);
    // The raw files complete, one pseudonymized file too, then the next Complete fails: the
    // rollback must take back files of both copies.
    proxy.setRules([
      {
        operation: 'CompleteMultipartUpload',
        pathIncludes: '/pseudonymized/sessions/',
        after: 1,
        action: 'error',
      },
    ]);
    const callsBefore = proxy.calls.length;

    const second = await run(prefix, env, proxy.endpoint);

    const completes = proxy.calls.slice(callsBefore).filter((c) => c.operation === 'CompleteMultipartUpload');
    const completedOf = (dir: string) =>
      completes.filter((c) => c.path.includes(`/${dir}/`) && c.fault === undefined);
    expect(completedOf('sessions').length).toBeGreaterThan(0);
    expect(completedOf('pseudonymized/sessions').length).toBeGreaterThan(0);
    expect(completes.some((c) => c.fault === 'error')).toBe(true);

    expect(second.manifest?.status).toBe('failed');
    expect(second.manifest?.run_id).not.toBe(first.manifest?.run_id);
    const rawAfter = await readVisibleSessions(stack.s3Client, stack.bucket, prefix);
    const pseudoAfter = await readVisibleSessions(
      stack.s3Client,
      stack.bucket,
      prefix,
      'pseudonymized/sessions',
    );
    expect(rawAfter.sort(byId)).toEqual(rawBefore.sort(byId));
    expect(pseudoAfter.sort(byId)).toEqual(pseudoBefore.sort(byId));
    expect(new Set(pseudoAfter.map((r) => r.run_id))).toEqual(new Set([first.manifest?.run_id]));
    expect(pseudoAfter).toHaveLength(truth().length);
    expect(await readObjects(stack.s3Client, stack.bucket, `${prefix}/pseudonymized/sessions/`)).toEqual(
      objectsBefore,
    );
    expect(await readObjects(stack.s3Client, stack.bucket, `${prefix}/sessions/`)).toEqual(rawObjectsBefore);
    expect((await stack.s3.openUploads()).filter((u) => u.key.startsWith(`${prefix}/`))).toEqual([]);
  });
});
