/**
 * The MoonKey client against the fake API over real HTTP: the bounds on one response (size, total
 * time), what its errors say (redirects, gzip) and that no text it keeps carries the key.
 */
import {
  ApiRequestError,
  ApiRequestTimeoutError,
  ApiRetryableError,
  MalformedResponseError,
  ResponseTooLargeError,
} from '../../lambda/core/errors';
import { type SessionsResponse, USER_NOT_FOUND } from '../../lambda/moonkey/classify-response';
import { createSessionsClient, type SessionsClient } from '../../lambda/moonkey/sessions-client';
import { type FakeApi, type FaultStep, startFakeMoonKeyApi } from '../../local/fake-moonkey-api';
import { isDeletedUser, sessionsFor, userIdFor } from '../../local/fake-sessions';

const KEY = 'sk_test_client_secret_9f8e7d';
const BASE_TIME = 1_764_115_200;
const MIB = 1024 * 1024;

let api: FakeApi;
let clients: SessionsClient[] = [];

beforeAll(async () => {
  api = await startFakeMoonKeyApi({ apiKey: KEY, baseTime: BASE_TIME });
});

afterAll(async () => {
  await api.close();
});

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  api.configure({ faults: {}, echoAuthorization: false, deletedUsers: [], deletedUserFraction: 0 });
  api.resetStats();
});

function client(overrides: Partial<Parameters<typeof createSessionsClient>[0]> = {}): SessionsClient {
  const c = createSessionsClient({
    apiUrl: api.url,
    apiKey: KEY,
    connections: 2,
    requestTimeoutMs: 5_000,
    requestTotalTimeoutMs: 30_000,
    maxResponseBytes: 64 * MIB,
    ...overrides,
  });
  clients.push(c);
  return c;
}

/** One call for a user whose next answer is `step`; resolves to the body or the error. */
async function callWith(step: FaultStep, c = client()): Promise<unknown> {
  api.configure({ faults: { user_1: [step] } });
  return c.fetchSessions('user_1', new AbortController().signal).catch((error: unknown) => error);
}

/** The parsed body of a 200 answer. */
const bodyOf = (answer: unknown) => (answer as SessionsResponse).body;

const until = async (check: () => boolean) => {
  for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
};

describe('the response byte limit', () => {
  it('fails a chunked body past EXPORT_MAX_RESPONSE_BYTES and stops reading it', async () => {
    const bytes = 64 * MIB;

    const error = await callWith({ kind: 'huge-body', bytes }, client({ maxResponseBytes: MIB }));

    expect(error).toBeInstanceOf(ResponseTooLargeError);
    expect((error as Error).message).toMatch(
      /^HTTP 200 response larger than EXPORT_MAX_RESPONSE_BYTES=1048576 \(exceeded it after \d+ bytes\); reading stopped/,
    );
    // The connection was closed: the server could write at most what socket buffers hold past the limit.
    let last = -1;
    await until(() => {
      const done = api.stats.streamedBytes === last;
      last = api.stats.streamedBytes;
      return done;
    });
    expect(api.stats.streamedBytes).toBeLessThan(bytes / 4);
  });

  it('refuses a declared Content-Length above the limit before reading the body', async () => {
    const error = await callWith(
      { kind: 'huge-body', bytes: 2 * MIB, declareLength: true },
      client({ maxResponseBytes: MIB }),
    );

    expect(error).toBeInstanceOf(ResponseTooLargeError);
    expect((error as Error).message).toContain('declares Content-Length: 2097152');
  });

  it('reads a body up to the limit', async () => {
    const body = await callWith({ kind: 'huge-body', bytes: 4096 }, client({ maxResponseBytes: 4096 }));

    expect(bodyOf(body)).toEqual({ sessions: [], padding: expect.any(String) });
  });

  it('is not retried: the next answer would be as large', () => {
    expect(new ResponseTooLargeError(1, 'x')).not.toBeInstanceOf(ApiRetryableError);
  });
});

describe('the total time of one attempt', () => {
  it('fails a body trickling in (each byte well within the idle timeout) at EXPORT_REQUEST_TOTAL_TIMEOUT_MS', async () => {
    const error = await callWith(
      { kind: 'trickle', intervalMs: 50 },
      client({ requestTimeoutMs: 1_000, requestTotalTimeoutMs: 400 }),
    );

    expect(error).toBeInstanceOf(ApiRequestTimeoutError);
    expect(error).toBeInstanceOf(ApiRetryableError);
    expect((error as Error).message).toMatch(
      /^the request took longer than EXPORT_REQUEST_TOTAL_TIMEOUT_MS=400 \(\d+ body bytes received\)$/,
    );
  });

  it('lets a trickling body finish when it fits in the total time', async () => {
    const body = await callWith(
      { kind: 'trickle', intervalMs: 1 },
      client({ requestTotalTimeoutMs: 10_000 }),
    );

    expect(bodyOf(body)).toEqual({ sessions: [], note: 'trickling' });
  });
});

describe('what an error says', () => {
  it('names the Location of a redirect (which is not followed)', async () => {
    const error = await callWith({
      kind: 'status',
      status: 302,
      body: '',
      headers: { location: 'https://eu.api.moonkey.fun/v1/auth/sessions/list?user_id=user_1' },
    });

    expect(error).toBeInstanceOf(ApiRequestError);
    expect((error as Error).message).toBe(
      'HTTP 302 redirect to https://eu.api.moonkey.fun/v1/auth/sessions/list?user_id=user_1; redirects are not followed (the key must not travel to another host): set MOONKEY_API_URL to the final address',
    );
  });

  it('says a redirect had no Location when it had none', async () => {
    const error = await callWith({ kind: 'status', status: 301, body: '' });

    expect((error as Error).message).toMatch(/^HTTP 301 redirect to \(no Location header\);/);
  });

  it('reports a gzip body it did not ask for as gzip, not as "not JSON"', async () => {
    const error = await callWith({ kind: 'gzip' });

    expect(error).toBeInstanceOf(MalformedResponseError);
    expect((error as Error).message).toMatch(
      /^HTTP 200 with a gzip-compressed body \(\d+ bytes, Content-Encoding: gzip\) although the request asked for identity/,
    );
  });

  it('reads a normal answer as before', async () => {
    const answer = await client().fetchSessions('user_7', new AbortController().signal);

    expect(bodyOf(answer)).toEqual({ sessions: sessionsFor('user_7', BASE_TIME) });
  });
});

describe('the API key in a response', () => {
  it('is redacted, with any Bearer token, from an error body that echoes the Authorization header', async () => {
    api.configure({ echoAuthorization: true });

    const error = await callWith({ kind: 'status', status: 400 });

    expect(error).toBeInstanceOf(ApiRequestError);
    const message = (error as Error).message;
    expect(message).not.toContain(KEY);
    expect(message).toContain('"authorization":"Bearer [REDACTED]"');
  });

  it('is removed from a 200 body that echoes it, so it reaches neither sessions/ nor rejects/', async () => {
    const answer = await callWith({
      kind: 'status',
      status: 200,
      body: JSON.stringify({ sessions: [{ id: 's', note: `sent with Bearer ${KEY}` }] }),
    });

    expect(JSON.stringify(answer)).not.toContain(KEY);
    expect(answer).toEqual({
      body: { sessions: [{ id: 's', note: 'sent with Bearer [REDACTED]' }] },
      rawItems: ['{"id":"s","note":"sent with Bearer [REDACTED]"}'],
    });
  });

  it('is redacted from a redirect Location that carries it', async () => {
    const error = await callWith({
      kind: 'status',
      status: 307,
      body: '',
      headers: { location: `https://other.example/?token=${KEY}` },
    });

    expect((error as Error).message).not.toContain(KEY);
    expect((error as Error).message).toContain('https://other.example/?token=[REDACTED]');
  });
});

describe('deleted users at the fake API', () => {
  const live = () => new AbortController().signal;

  it('answers a deleted user with the API error user_not_found, which the client reads as the user gone', async () => {
    api.configure({ deletedUsers: ['user_gone'] });

    const gone = await client().fetchSessions('user_gone', live());
    const kept = await client().fetchSessions('user_kept', live());

    expect(gone).toBe(USER_NOT_FOUND);
    expect(bodyOf(kept)).toEqual({ sessions: sessionsFor('user_kept', BASE_TIME) });
    expect(api.stats.byStatus).toEqual({ 200: 1, 404: 1 });
  });

  it('deletes a deterministic fraction of users, the ones isDeletedUser names', async () => {
    api.configure({ deletedUserFraction: 0.1 });
    const ids = Array.from({ length: 400 }, (_, i) => userIdFor(i));
    const c = client();

    const answers = await Promise.all(ids.map((id) => c.fetchSessions(id, live())));

    const gone = ids.filter((_, i) => answers[i] === USER_NOT_FOUND);
    expect(gone).toEqual(ids.filter((id) => isDeletedUser(id, 0.1)));
    // About a tenth, and neither none nor all: the fraction really selects.
    expect(gone.length).toBeGreaterThan(20);
    expect(gone.length).toBeLessThan(60);
    expect(api.stats.byStatus[404]).toBe(gone.length);
  });

  it('answers every user of a wrong base path with an HTML Not Found page, a failure for the client', async () => {
    const error = await client({ apiUrl: `${api.url}/api` })
      .fetchSessions('user_1', live())
      .catch((e: unknown) => e);

    expect(error).toBeInstanceOf(ApiRequestError);
    expect((error as ApiRequestError).status).toBe(404);
    expect((error as Error).message).toMatch(/^HTTP 404: <!DOCTYPE html>/);
  });
});
