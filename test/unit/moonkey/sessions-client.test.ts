/**
 * The MoonKey client against a real HTTP server in this process: what it sends, and how each
 * kind of answer becomes a value or a typed error (which the retry policy and the run act on).
 */
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import {
  ApiAuthError,
  ApiRequestError,
  ApiRetryableError,
  ApiThrottledError,
  MalformedResponseError,
  ResponseTooLargeError,
  RetriesExhaustedError,
} from '../../../lambda/core/errors';
import { withRetries } from '../../../lambda/flow/retry-policy';
import { type SessionsResponse, USER_NOT_FOUND } from '../../../lambda/moonkey/classify-response';
import { createSessionsClient, type SessionsClient } from '../../../lambda/moonkey/sessions-client';
import { freePort } from '../../../local/child-server';

const API_KEY = 'sk_live_client_test_5150';

interface Answer {
  status: number;
  body?: string | Buffer;
  headers?: Record<string, string>;
  /** Never answer: the client's timeout must fire. */
  hang?: boolean;
}

let server: Server;
let baseUrl: string;
let answer: (req: IncomingMessage) => Answer;
const received: {
  url: string;
  authorization: string | undefined;
  accept?: string | undefined;
  method: string | undefined;
}[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push({
      url: req.url ?? '',
      authorization: req.headers.authorization,
      accept: req.headers.accept,
      method: req.method,
    });
    const a = answer(req);
    if (a.hang) return;
    res.writeHead(a.status, { 'content-type': 'application/json', ...a.headers });
    res.end(a.body ?? '');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

let client: SessionsClient;
const clients: SessionsClient[] = [];
const newClient = (apiUrl = baseUrl, requestTimeoutMs = 2000) => {
  const c = createSessionsClient({
    apiUrl,
    apiKey: API_KEY,
    connections: 2,
    requestTimeoutMs,
    requestTotalTimeoutMs: 30_000,
    maxResponseBytes: 64 * 1024 * 1024,
  });
  clients.push(c);
  return c;
};

beforeEach(() => {
  received.length = 0;
  answer = () => ({ status: 200, body: '{"sessions":[]}' });
  client = newClient();
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});

const live = () => new AbortController().signal;
const failureOf = (userId = 'user_1', c = client) =>
  c.fetchSessions(userId, live()).then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as Error,
  );

/** The error the retry policy ends with when every attempt goes through the client. */
const retriedFailure = (maxAttempts: number) =>
  withRetries(
    () => client.fetchSessions('u', live()),
    { maxAttempts, baseDelayMs: 1, maxDelayMs: 1 },
    live(),
    () => {},
  ).then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as Error,
  );

describe('createSessionsClient: the request', () => {
  it('GETs the list path under the base URL with the bearer key and the user id URL-encoded', async () => {
    const c = newClient(`${baseUrl}/gateway/`);

    await c.fetchSessions('ünï côdé/?&=#+%', live());

    expect(received).toEqual([
      {
        method: 'GET',
        authorization: `Bearer ${API_KEY}`,
        accept: 'application/json',
        url: `/gateway/v1/auth/sessions/list?user_id=${encodeURIComponent('ünï côdé/?&=#+%')}`,
      },
    ]);
  });
});

describe('createSessionsClient: the base URL and the pool', () => {
  it('drops every trailing slash of the base URL', async () => {
    await newClient(`${baseUrl}/gateway//`).fetchSessions('u', live());

    expect(received.map((r) => r.url)).toEqual(['/gateway/v1/auth/sessions/list?user_id=u']);
  });

  it('sends nothing once closed', async () => {
    const c = createSessionsClient({
      requestTotalTimeoutMs: 30_000,
      maxResponseBytes: 64 * 1024 * 1024,
      apiUrl: baseUrl,
      apiKey: API_KEY,
      connections: 1,
      requestTimeoutMs: 1000,
    });
    await c.close();

    await expect(c.fetchSessions('u', live())).rejects.toThrow();
    expect(received).toHaveLength(0);
  });
});

describe('createSessionsClient: a 200 answer', () => {
  it('returns the parsed body and the text of each item exactly as sent', async () => {
    const text = '{"sessions":[{"id":"a", "user_id":"u"},{"id":"b","n":1.50}]}';
    answer = () => ({ status: 200, body: text });

    const response = (await client.fetchSessions('u', live())) as SessionsResponse;

    expect(response).toEqual({
      body: JSON.parse(text),
      rawItems: ['{"id":"a", "user_id":"u"}', '{"id":"b","n":1.50}'],
    });
  });

  it('returns no item texts for a body it cannot index, and the body all the same', async () => {
    const text = '{"sessions":[{"id":"a"}],\n"next_cursor":null}';
    answer = () => ({ status: 200, body: text });

    expect(await client.fetchSessions('u', live())).toEqual({ body: JSON.parse(text), rawItems: undefined });
  });

  it('turns a body that is not JSON into a MalformedResponseError, which the retry policy retries', async () => {
    answer = () => ({ status: 200, body: '{"sessions": [{"id": "cut' });

    const error = await failureOf();

    expect(error).toBeInstanceOf(MalformedResponseError);
    expect(error.message).toBe('HTTP 200 with a body that is not JSON (25 bytes)');
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });
});

describe('createSessionsClient: error statuses', () => {
  it.each([401, 403])('maps %i to ApiAuthError, which is never retried', async (status) => {
    answer = () => ({ status, body: '{"error":"unauthorized"}' });

    const error = await retriedFailure(5);

    expect(error).toBeInstanceOf(ApiAuthError);
    expect((error as ApiAuthError).status).toBe(status);
    expect(received).toHaveLength(1);
  });

  it('maps 429 to ApiThrottledError carrying Retry-After in ms', async () => {
    answer = () => ({ status: 429, body: '{}', headers: { 'retry-after': '2' } });

    const error = await failureOf();

    expect(error).toBeInstanceOf(ApiThrottledError);
    expect(error).toBeInstanceOf(ApiRetryableError);
    expect((error as ApiThrottledError).retryAfterMs).toBe(2000);
    expect(error.message).toBe('HTTP 429');
  });

  it('maps a 429 without Retry-After to no floor', async () => {
    answer = () => ({ status: 429, body: '{}' });

    expect(((await failureOf()) as ApiThrottledError).retryAfterMs).toBeUndefined();
  });

  it.each([500, 502, 503, 599])('maps %i to a retryable error that is not a throttle', async (status) => {
    answer = () => ({ status, body: 'upstream sad', headers: { 'retry-after': '1' } });

    const error = await failureOf();

    expect(error).toBeInstanceOf(ApiRetryableError);
    expect(error).not.toBeInstanceOf(ApiThrottledError);
    expect(error.message).toBe(`HTTP ${status}`);
    expect((error as ApiRetryableError).retryAfterMs).toBe(1000);
  });

  it('retries a 5xx through the retry policy until it gives up', async () => {
    answer = () => ({ status: 503, body: '' });

    const error = await retriedFailure(3);

    expect(error).toBeInstanceOf(RetriesExhaustedError);
    expect(received).toHaveLength(3);
  });

  it.each([400, 404, 409, 422, 499])(
    'maps %i to ApiRequestError with the body, never retried',
    async (status) => {
      answer = () => ({ status, body: '{"error":"no such user"}' });

      const error = await retriedFailure(5);

      expect(error).toBeInstanceOf(ApiRequestError);
      expect((error as ApiRequestError).status).toBe(status);
      expect(error.message).toBe(`HTTP ${status}: {"error":"no such user"}`);
      expect(received).toHaveLength(1);
    },
  );

  it('keeps at most 200 characters of an error body', async () => {
    answer = () => ({ status: 400, body: 'x'.repeat(1000) });

    expect((await failureOf()).message).toBe(`HTTP 400: ${'x'.repeat(200)}`);
  });

  it('never puts the API key into an error, even when the body echoes the request headers', async () => {
    answer = (req) => ({
      status: 400,
      body: JSON.stringify({ error: 'bad_request', echo: req.headers.authorization }),
    });

    const error = await failureOf();

    expect(error).toBeInstanceOf(ApiRequestError);
    expect(error.message).toBe('HTTP 400: {"error":"bad_request","echo":"Bearer [REDACTED]"}');
    expect(error.message).not.toContain(API_KEY);
  });
});

describe('createSessionsClient: a 404', () => {
  const USER_GONE = JSON.stringify({
    status_code: 404,
    request_id: 'request-id-test-1',
    error_type: 'user_not_found',
    message: 'User could not be found.',
  });
  /** What the retry policy ends with when every attempt goes through the client, and the attempts. */
  const outcomeOf = () =>
    withRetries(
      () => client.fetchSessions('user_gone', live()),
      { maxAttempts: 5, baseDelayMs: 1, maxDelayMs: 1 },
      live(),
      () => {},
    ).catch((error: unknown) => error as Error);

  it('is the user gone when its body is the API error with error_type user_not_found: once, never retried', async () => {
    answer = () => ({ status: 404, body: USER_GONE });

    expect(await outcomeOf()).toBe(USER_NOT_FOUND);
    expect(received).toHaveLength(1);
  });

  it('reads the API error around white space and whatever content type it comes with', async () => {
    answer = () => ({ status: 404, body: `\n  ${USER_GONE}  \n`, headers: { 'content-type': 'text/plain' } });

    expect(await outcomeOf()).toBe(USER_NOT_FOUND);
  });

  /** The API error padded with spaces to exactly `chars` characters: still the same JSON. */
  const padded = (chars: number) => `${USER_GONE.slice(0, -1)}${' '.repeat(chars - USER_GONE.length)}}`;

  it('reads the API error up to 4096 characters long', async () => {
    answer = () => ({ status: 404, body: padded(4096) });

    expect(await outcomeOf()).toBe(USER_NOT_FOUND);
  });

  it.each([
    ['JSON null', 'null'],
    ['a JSON number', '404'],
    [
      'an HTML page, as a wrong base path gives',
      '<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>',
    ],
    [
      'another error_type',
      JSON.stringify({ status_code: 404, error_type: 'route_not_found', message: 'no route' }),
    ],
    ['a JSON 404 without error_type', '{"error":"not_found"}'],
    ['user_not_found without status_code', JSON.stringify({ error_type: 'user_not_found' })],
    [
      'user_not_found with another status_code',
      JSON.stringify({ status_code: 400, error_type: 'user_not_found' }),
    ],
    ['status_code as text', JSON.stringify({ status_code: '404', error_type: 'user_not_found' })],
    ['the object inside an array', `[${USER_GONE}]`],
    ['the object cut short', USER_GONE.slice(0, -1)],
    ['text that only mentions user_not_found', 'error_type: user_not_found'],
    ['an empty body', ''],
    [
      'the object padded past 4096 characters',
      JSON.stringify({ status_code: 404, error_type: 'user_not_found', message: 'x'.repeat(4096) }),
    ],
    ['the object padded to 4097 characters', padded(4097)],
  ])('stays a failed user, not retried, for %s', async (_, body) => {
    answer = () => ({ status: 404, body });

    const error = await outcomeOf();

    expect(error).toBeInstanceOf(ApiRequestError);
    expect((error as ApiRequestError).status).toBe(404);
    expect(received).toHaveLength(1);
  });

  it('stays a failed user for the API error gzip-compressed (the client does not decompress)', async () => {
    answer = () => ({ status: 404, body: gzipSync(USER_GONE), headers: { 'content-encoding': 'gzip' } });

    const error = await outcomeOf();

    expect(error).toBeInstanceOf(ApiRequestError);
    expect((error as Error).message).toMatch(/^HTTP 404: \(gzip-compressed body of \d+ bytes\)$/);
  });

  it.each([400, 410, 422])('stays a failed user for the same body with HTTP %i', async (status) => {
    answer = () => ({ status, body: USER_GONE });

    const error = await outcomeOf();

    expect(error).toBeInstanceOf(ApiRequestError);
    expect((error as ApiRequestError).status).toBe(status);
  });
});

describe('createSessionsClient: the network', () => {
  it('turns a request that gets no answer into a retryable timeout', async () => {
    answer = () => ({ status: 0, hang: true });
    const c = newClient(baseUrl, 150);

    const error = await failureOf('u', c);

    expect(error).toBeInstanceOf(ApiRetryableError);
    expect(error.message).toMatch(/^UND_ERR_HEADERS_TIMEOUT: /);
    expect(error.cause).toBeDefined();
  });

  it('turns a refused connection into a retryable error that names the cause', async () => {
    const c = newClient(`http://127.0.0.1:${await freePort()}`);

    const error = await failureOf('u', c);

    expect(error).toBeInstanceOf(ApiRetryableError);
    expect(error.message).toMatch(/ECONNREFUSED/);
  });

  it('rejects with the run abort reason, before or during the call', async () => {
    const reason = new Error('run aborted');
    const before = new AbortController();
    before.abort(reason);
    await expect(client.fetchSessions('u', before.signal)).rejects.toBe(reason);
    expect(received).toHaveLength(0);

    answer = () => ({ status: 0, hang: true });
    const during = new AbortController();
    const pending = client.fetchSessions('u', during.signal);
    while (received.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    during.abort(reason);
    await expect(pending).rejects.toBe(reason);
  });
});

describe('createSessionsClient: the limits of one call', () => {
  it('fails a body past the byte limit with ResponseTooLargeError itself, which is not retried', async () => {
    answer = () => ({ status: 200, body: 'x'.repeat(2048) });
    const c = createSessionsClient({
      apiUrl: baseUrl,
      apiKey: API_KEY,
      connections: 1,
      requestTimeoutMs: 2000,
      requestTotalTimeoutMs: 30_000,
      maxResponseBytes: 1024,
    });
    clients.push(c);

    const error = await failureOf('u', c);

    expect(error).toBeInstanceOf(ResponseTooLargeError);
    expect(error).not.toBeInstanceOf(ApiRetryableError);
  });
});

describe('createSessionsClient: a call still waiting for a connection', () => {
  it('is never sent once the run is aborted', async () => {
    answer = () => ({ status: 0, hang: true });
    const c = createSessionsClient({
      requestTotalTimeoutMs: 30_000,
      maxResponseBytes: 64 * 1024 * 1024,
      apiUrl: baseUrl,
      apiKey: API_KEY,
      connections: 1,
      requestTimeoutMs: 5000,
    });
    clients.push(c);
    const run = new AbortController();
    const reason = new Error('run aborted');

    const calls = ['first', 'queued'].map((id) => c.fetchSessions(id, run.signal).catch((e: unknown) => e));
    while (received.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    run.abort(reason);

    expect(await Promise.all(calls)).toEqual([reason, reason]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received.map((r) => r.url)).toEqual(['/v1/auth/sessions/list?user_id=first']);
  });
});
