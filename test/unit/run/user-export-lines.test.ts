/**
 * One user's lines, from the answer the client gives (`{ body, rawItems }`) to the text handed
 * to the writers: each session's own text when the client had it, JSON.stringify otherwise.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import pLimit from 'p-limit';
import { parse } from 'yaml';
import { parseConfig } from '../../../lambda/core/config';
import { unlimited } from '../../../lambda/flow/rate-limiter';
import { type SessionsResponse, USER_NOT_FOUND } from '../../../lambda/moonkey/classify-response';
import type { FetchSessions } from '../../../lambda/moonkey/sessions-client';
import { Admission } from '../../../lambda/run/admission';
import { createPiiCopies, type PiiCopies, RAW_ONLY } from '../../../lambda/run/pii-copies';
import { UserExport } from '../../../lambda/run/user-export';
import { emptyCounts } from '../../../lambda/snapshot/manifest';
import type { NdjsonWriter } from '../../../lambda/snapshot/ndjson-writer';
import type { FileKind } from '../../../lambda/snapshot/snapshot-keys';

const USER = 'user_1';
const RUN = {
  snapshotId: 'scheduled-20261127T020000Z',
  runId: 'r20261127T020004512Z-3fa9c1',
  snapshotAt: 1_764_208_800,
};
const NOW_MS = 1_764_208_900_000;
/** The vendor's own example session, read from the contract fixture. */
const openapi = parse(readFileSync(join(__dirname, '../../fixtures/moonkey-openapi.yaml'), 'utf8'));
const example = openapi.paths['/v1/auth/sessions/list'].get.responses['200'].content['application/json']
  .examples.ListSessionsResp.value.sessions[0] as Record<string, unknown>;
const session = (id: string) => ({ ...example, id, user_id: USER });

/** Runs one user through UserExport with `answer` as the client's answer; returns what each writer got. */
async function linesFor(
  answer: SessionsResponse | typeof USER_NOT_FOUND,
  copies: PiiCopies = RAW_ONLY,
  counts = emptyCounts(),
): Promise<Record<FileKind, string>> {
  const written: Record<FileKind, string> = {
    sessions: '',
    rejects: '',
    'failed-users': '',
    'pseudonymized/sessions': '',
    'pseudonymized/rejects': '',
  };
  const writer = (kind: FileKind) =>
    ({
      write: async (lines: string) => {
        written[kind] += lines;
      },
    }) as unknown as NdjsonWriter;
  const admission = new Admission(10, () => 1);
  const failures: Error[] = [];
  const fetchSessions: FetchSessions = async () => answer;
  new UserExport({
    config: parseConfig({ USERS_TABLE_NAME: 'users', EXPORT_BUCKET_NAME: 'bucket', MOONKEY_API_KEY: 'k' }),
    run: RUN,
    fetchSessions,
    copies,
    apiCalls: pLimit(1),
    rateLimiter: unlimited,
    aimd: undefined,
    admission,
    writers: {
      sessions: writer('sessions'),
      rejects: writer('rejects'),
      'failed-users': writer('failed-users'),
      'pseudonymized/sessions': writer('pseudonymized/sessions'),
      'pseudonymized/rejects': writer('pseudonymized/rejects'),
    },
    counts,
    failedUsers: [],
    logger: { debug: () => {}, info: () => {}, warn: () => {}, error: () => {} },
    signal: new AbortController().signal,
    failRun: (error) => failures.push(error),
    now: () => NOW_MS,
  }).start(USER);
  await admission.drained();
  expect(failures).toEqual([]);
  return written;
}

const OURS = `"snapshot_id":"${RUN.snapshotId}","run_id":"${RUN.runId}","snapshot_at":${RUN.snapshotAt},"observed_at":${NOW_MS / 1000}`;

describe('UserExport: the session lines', () => {
  it("writes each session's own text as MoonKey sent it, plus the job's fields", async () => {
    const items = [session('a'), session('b')];
    // Spacing JSON.stringify would not reproduce.
    const raw = items.map((item) => JSON.stringify(item, null, 1).replace(/\n/g, ''));

    const { sessions } = await linesFor({ body: { sessions: items }, rawItems: raw });

    expect(sessions).toBe(raw.map((text) => `${text.slice(0, -1)},${OURS}}\n`).join(''));
  });

  it('writes JSON.stringify of a session whose text the client could not index', async () => {
    const item = session('a');

    const { sessions } = await linesFor({ body: { sessions: [item] }, rawItems: undefined });

    expect(sessions).toBe(`${JSON.stringify(item).slice(0, -1)},${OURS}}\n`);
  });

  it("rebuilds a session that carries one of the job's own fields, ours replacing MoonKey's", async () => {
    const item = { ...session('a'), run_id: 'theirs' };

    const { sessions } = await linesFor({ body: { sessions: [item] }, rawItems: ['{"not":"used"}'] });

    expect(JSON.parse(sessions)).toEqual({ ...item, ...JSON.parse(`{${OURS}}`) });
  });

  it('puts a quarantined item into rejects/ as the text it came in', async () => {
    const broken = { ...session('bad'), factors: [] };
    const raw = ['{ "id" : "bad", "factors" : [] }'];

    const { sessions, rejects } = await linesFor({ body: { sessions: [broken] }, rawItems: raw });

    expect(sessions).toBe('');
    expect(JSON.parse(rejects)).toMatchObject({
      snapshot_id: RUN.snapshotId,
      run_id: RUN.runId,
      user_id: USER,
      reason: 'schema',
      item_raw: raw[0],
    });
  });

  it('counts a user with sessions, its sessions and its rejects, once each', async () => {
    const counts = emptyCounts();
    const broken = { ...session('bad'), factors: [] };

    await linesFor(
      { body: { sessions: [session('a'), session('b'), broken] }, rawItems: undefined },
      RAW_ONLY,
      counts,
    );

    expect(counts).toMatchObject({
      users_processed: 1,
      users_with_sessions: 1,
      sessions_exported: 2,
      items_rejected: 1,
      users_not_found: 0,
      requests: 1,
    });
  });

  it('counts a user MoonKey no longer knows as processed and not found, and writes nothing for it', async () => {
    const counts = emptyCounts();

    const written = await linesFor(USER_NOT_FOUND, RAW_ONLY, counts);

    expect(Object.values(written).join('')).toBe('');
    expect(counts).toMatchObject({ users_processed: 1, users_not_found: 1, users_with_sessions: 0 });
  });

  describe('with a pseudonymized copy', () => {
    const copiesOf = (mode: 'pseudonymized' | 'both') => {
      const config = parseConfig({
        USERS_TABLE_NAME: 'users',
        EXPORT_BUCKET_NAME: 'bucket',
        MOONKEY_API_KEY: 'k',
        EXPORT_COPIES: mode,
        EXPORT_PII_KEY: 'a-local-test-hmac-key-of-enough-length!!',
      });
      return createPiiCopies(config.pii, Buffer.from('a-local-test-hmac-key-of-enough-length!!'));
    };
    const answer = () => ({
      body: { sessions: [session('a'), { ...session('bad'), factors: [] }] },
      rawItems: undefined,
    });

    it('writes only the pseudonymized sessions and rejects in pseudonymized mode', async () => {
      const written = await linesFor(answer(), copiesOf('pseudonymized'));

      expect(written.sessions).toBe('');
      expect(written.rejects).toBe('');
      // One JSON object a line, each naming the run.
      for (const kind of ['pseudonymized/sessions', 'pseudonymized/rejects'] as const) {
        const lines = written[kind].split('\n');
        expect(lines.pop()).toBe('');
        expect(lines).toHaveLength(1);
        expect(JSON.parse(lines[0] as string)).toMatchObject({
          snapshot_id: RUN.snapshotId,
          run_id: RUN.runId,
        });
      }
    });

    it('writes both copies from the one answer in both mode', async () => {
      const written = await linesFor(answer(), copiesOf('both'));

      for (const kind of ['sessions', 'rejects', 'pseudonymized/sessions', 'pseudonymized/rejects'] as const)
        expect(written[kind]).not.toBe('');
      expect(written['pseudonymized/sessions']).not.toBe(written.sessions);
    });
  });
});
