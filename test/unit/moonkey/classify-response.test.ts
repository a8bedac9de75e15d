/**
 * What each answer of the list-sessions call means, decided on the answer as the transport hands
 * it over (no server: sessions-client.test.ts sends the same answers over HTTP).
 */
import {
  ApiAuthError,
  ApiRequestError,
  ApiRetryableError,
  ApiThrottledError,
  MalformedResponseError,
} from '../../../lambda/core/errors';
import {
  classifyNetworkError,
  classifyResponse,
  isUserNotFoundBody,
  USER_NOT_FOUND,
} from '../../../lambda/moonkey/classify-response';
import type { RawResponse } from '../../../lambda/moonkey/http-transport';

const KEY = 'sk_live_classify_0042';
const NOW = Date.parse('2026-11-26T10:00:00Z');

const answer = (overrides: Partial<RawResponse>): RawResponse => ({
  statusCode: 200,
  retryAfter: undefined,
  location: undefined,
  contentEncoding: undefined,
  gzip: false,
  bytes: overrides.text?.length ?? 0,
  text: '',
  ...overrides,
});

const thrownBy = (response: RawResponse): Error => {
  try {
    classifyResponse(response, KEY, NOW);
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected classifyResponse to throw');
};

describe('classifyResponse: 200', () => {
  it('gives the parsed body and the exact text of each item', () => {
    const text = '{"sessions":[{"id":"a", "n":1.50},{"id":"b"}],"next_cursor":null}';

    expect(classifyResponse(answer({ text }), KEY, NOW)).toEqual({
      body: JSON.parse(text),
      rawItems: ['{"id":"a", "n":1.50}', '{"id":"b"}'],
    });
  });

  it.each([
    ['no sessions array', '{"data":[]}'],
    ['sessions that is not an array', '{"sessions":{"id":"a"}}'],
    ['an empty sessions array', '{"sessions":[]}'],
    ['JSON null', 'null'],
    ['a body on two lines', '{"sessions":[{"id":"a"}]\n}'],
  ])('gives no item texts for %s, and the body all the same', (_, text) => {
    expect(classifyResponse(answer({ text }), KEY, NOW)).toEqual({
      body: JSON.parse(text),
      rawItems: undefined,
    });
  });

  it('removes the API key from the body and its item texts, and leaves other Bearer words alone', () => {
    const text = `{"sessions":[{"id":"a","ua":"Bearer ${KEY} and Bearer other"}]}`;

    const response = classifyResponse(answer({ text }), KEY, NOW);

    expect(JSON.stringify(response)).not.toContain(KEY);
    expect(response).toEqual({
      body: { sessions: [{ id: 'a', ua: 'Bearer [REDACTED] and Bearer other' }] },
      rawItems: ['{"id":"a","ua":"Bearer [REDACTED] and Bearer other"}'],
    });
  });

  it('fails a body that is not JSON, saying how long it was, with the parse error as cause', () => {
    const error = thrownBy(answer({ text: '{"sessions": [{"id": "cut' }));

    expect(error).toBeInstanceOf(MalformedResponseError);
    expect(error.message).toBe('HTTP 200 with a body that is not JSON (25 bytes)');
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it('fails a gzip body, naming its Content-Encoding when it had one', () => {
    const declared = thrownBy(answer({ gzip: true, bytes: 31, contentEncoding: 'gzip' }));
    const sniffed = thrownBy(answer({ gzip: true, bytes: 31 }));

    expect(declared).toBeInstanceOf(MalformedResponseError);
    expect(declared.message).toBe(
      'HTTP 200 with a gzip-compressed body (31 bytes, Content-Encoding: gzip) although the request asked for identity; the client does not decompress',
    );
    expect(sniffed.message).toBe(
      'HTTP 200 with a gzip-compressed body (31 bytes) although the request asked for identity; the client does not decompress',
    );
  });
});

describe('classifyResponse: error statuses', () => {
  it.each([401, 403])('maps %i to ApiAuthError', (status) => {
    const error = thrownBy(answer({ statusCode: status, text: '{"error":"unauthorized"}' }));

    expect(error).toBeInstanceOf(ApiAuthError);
    expect((error as ApiAuthError).status).toBe(status);
  });

  it('maps 429 to ApiThrottledError with Retry-After in ms, or no floor without one', () => {
    const seconds = thrownBy(answer({ statusCode: 429, retryAfter: '2' }));
    const date = thrownBy(answer({ statusCode: 429, retryAfter: 'Thu, 26 Nov 2026 10:00:05 GMT' }));
    const none = thrownBy(answer({ statusCode: 429 }));

    expect(seconds).toBeInstanceOf(ApiThrottledError);
    expect(seconds.message).toBe('HTTP 429');
    expect((seconds as ApiThrottledError).retryAfterMs).toBe(2000);
    expect((date as ApiThrottledError).retryAfterMs).toBe(5000);
    expect((none as ApiThrottledError).retryAfterMs).toBeUndefined();
  });

  it.each([500, 502, 599])(
    'maps %i to a retryable error that is not a throttle, with its Retry-After',
    (status) => {
      const error = thrownBy(answer({ statusCode: status, text: 'upstream sad', retryAfter: ['1', '9'] }));

      expect(error).toBeInstanceOf(ApiRetryableError);
      expect(error).not.toBeInstanceOf(ApiThrottledError);
      expect(error.message).toBe(`HTTP ${status}`);
      expect((error as ApiRetryableError).retryAfterMs).toBe(1000);
    },
  );

  it.each([300, 301, 307, 399])(
    'maps redirect %i to ApiRequestError naming the Location, key redacted',
    (status) => {
      const error = thrownBy(answer({ statusCode: status, location: `https://other.example/?k=${KEY}` }));

      expect(error).toBeInstanceOf(ApiRequestError);
      expect((error as ApiRequestError).status).toBe(status);
      expect(error.message).toBe(
        `HTTP ${status} redirect to https://other.example/?k=[REDACTED]; redirects are not followed (the key must not travel to another host): set MOONKEY_API_URL to the final address`,
      );
    },
  );

  it('says a redirect had no Location when it had none', () => {
    expect(thrownBy(answer({ statusCode: 302 })).message).toMatch(
      /^HTTP 302 redirect to \(no Location header\);/,
    );
  });

  it.each([204, 299, 400, 404, 409, 499])(
    'maps %i to ApiRequestError with the start of the body',
    (status) => {
      const error = thrownBy(answer({ statusCode: status, text: 'x'.repeat(1000) }));

      expect(error).toBeInstanceOf(ApiRequestError);
      expect((error as ApiRequestError).status).toBe(status);
      expect(error.message).toBe(`HTTP ${status}: ${'x'.repeat(200)}`);
    },
  );

  it('redacts the key and any Bearer token from an error body', () => {
    const error = thrownBy(
      answer({ statusCode: 400, text: `{"echo":"Bearer ${KEY}","other":"bearer t0k"}` }),
    );

    expect(error.message).toBe('HTTP 400: {"echo":"Bearer [REDACTED]","other":"bearer [REDACTED]"}');
  });

  it('describes a gzip error body by its size instead of its bytes', () => {
    expect(thrownBy(answer({ statusCode: 404, gzip: true, bytes: 77 })).message).toBe(
      'HTTP 404: (gzip-compressed body of 77 bytes)',
    );
  });
});

describe('classifyResponse: 404', () => {
  const USER_GONE = JSON.stringify({ status_code: 404, error_type: 'user_not_found', message: 'gone' });

  it("is the user gone for the API's own user_not_found error", () => {
    expect(classifyResponse(answer({ statusCode: 404, text: USER_GONE }), KEY, NOW)).toBe(USER_NOT_FOUND);
  });

  it('is a failed call for the same body with another status', () => {
    expect(thrownBy(answer({ statusCode: 410, text: USER_GONE }))).toBeInstanceOf(ApiRequestError);
  });
});

describe('isUserNotFoundBody', () => {
  const GONE = { status_code: 404, error_type: 'user_not_found' };

  it('reads the API error, around white space, up to 4096 characters', () => {
    expect(isUserNotFoundBody(JSON.stringify(GONE))).toBe(true);
    expect(isUserNotFoundBody(` \n${JSON.stringify(GONE)}\n `)).toBe(true);
    const text = JSON.stringify(GONE);
    expect(isUserNotFoundBody(`${text.slice(0, -1)}${' '.repeat(4096 - text.length)}}`)).toBe(true);
    expect(isUserNotFoundBody(`${text.slice(0, -1)}${' '.repeat(4097 - text.length)}}`)).toBe(false);
  });

  it.each([
    ['null', 'null'],
    ['a number', '404'],
    ['a string', '"user_not_found"'],
    ['an array holding the object', `[${JSON.stringify(GONE)}]`],
    ['another error_type', JSON.stringify({ ...GONE, error_type: 'route_not_found' })],
    ['status_code as text', JSON.stringify({ ...GONE, status_code: '404' })],
    ['no status_code', JSON.stringify({ error_type: 'user_not_found' })],
    ['not JSON', '<html>404</html>'],
    ['empty', ''],
  ])('is not the API error for %s', (_, text) => {
    expect(isUserNotFoundBody(text)).toBe(false);
  });
});

describe('classifyNetworkError', () => {
  const withCode = (code: string, message = 'boom') => Object.assign(new Error(message), { code });

  it('leads with a known network code and keeps the error as cause', () => {
    const original = withCode('ECONNRESET', 'socket hang up');

    const error = classifyNetworkError(original);

    expect(error).toBeInstanceOf(ApiRetryableError);
    expect(error.message).toBe('ECONNRESET: socket hang up');
    expect(error.cause).toBe(original);
    expect((error as ApiRetryableError).retryAfterMs).toBeUndefined();
  });

  it.each([
    'UND_ERR_CONNECT_TIMEOUT',
    'UND_ERR_HEADERS_TIMEOUT',
    'UND_ERR_BODY_TIMEOUT',
    'UND_ERR_SOCKET',
    'UND_ERR_CLOSED',
    'ECONNRESET',
    'ECONNREFUSED',
    'EPIPE',
    'ETIMEDOUT',
    'EAI_AGAIN',
  ])('knows %s', (code) => {
    expect(classifyNetworkError(withCode(code)).message).toBe(`${code}: boom`);
  });

  it('keeps the message alone for an unknown code or none, still retryable with its cause', () => {
    const odd = withCode('E_SOMETHING_ELSE', 'odd');
    const plain = new Error('plain');

    expect(classifyNetworkError(odd)).toMatchObject({ message: 'odd', cause: odd });
    expect(classifyNetworkError(odd)).toBeInstanceOf(ApiRetryableError);
    expect(classifyNetworkError(plain)).toMatchObject({ message: 'plain', cause: plain });
  });

  it('leaves an AbortError as it is', () => {
    const abort = Object.assign(new Error('This operation was aborted'), { name: 'AbortError' });

    expect(classifyNetworkError(abort)).toBe(abort);
  });

  it('turns a thrown non-error into a retryable error with its text and no cause', () => {
    const error = classifyNetworkError('just a string');

    expect(error).toBeInstanceOf(ApiRetryableError);
    expect(error.message).toBe('just a string');
    expect(error.cause).toBeUndefined();
  });
});
