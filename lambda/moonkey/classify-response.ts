import {
  ApiAuthError,
  ApiRequestError,
  ApiRetryableError,
  ApiThrottledError,
  MalformedResponseError,
} from '../core/errors';
import type { RawResponse } from './http-transport';
import { redactSecrets, withoutApiKey } from './redact-secrets';
import { parseRetryAfter } from './retry-after';
import { rawSessionItems } from './session-item-spans';

/**
 * What a call resolves to when MoonKey says the user does not exist (404 with the API's
 * `user_not_found` error): a user deleted since the users table was read. Not an error: such a
 * user has no sessions, is not retried and is not a failed user. A symbol, so no JSON body can
 * ever be mistaken for it.
 */
export const USER_NOT_FOUND: unique symbol = Symbol('MoonKey user not found');

/**
 * A 200 answer: the parsed body, and the exact JSON text of each element of its `sessions`
 * array by index (undefined when the response could not be indexed: more than one line, an
 * escaped or repeated top-level key, a non-object element, or no `sessions` array at all).
 */
export interface SessionsResponse {
  readonly body: unknown;
  readonly rawItems: readonly string[] | undefined;
}

/** How much of an error body goes into a message (and so into logs, the manifest and failed-users/). */
const ERROR_BODY_CHARS = 200;

/**
 * Longest 404 body read as the API's JSON error. Its `user_not_found` object is about 200 bytes;
 * a larger body is some other page, and is not parsed (it may be up to EXPORT_MAX_RESPONSE_BYTES).
 */
const NOT_FOUND_BODY_CHARS = 4096;

/**
 * Whether a 404 body is the API's own "no such user" error: a JSON object with
 * `"status_code": 404` and `"error_type": "user_not_found"` (the error shape of the API family).
 * Anything else is not: an HTML page or another JSON 404 is what a wrong base path or a proxy in
 * front of the wrong host gives, and reading those as deleted users would quietly drop users.
 */
export function isUserNotFoundBody(text: string): boolean {
  if (text.length > NOT_FOUND_BODY_CHARS) return false;
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return false;
  }
  // An array or a number has no such fields; null has none to read at all.
  if (typeof body !== 'object' || body === null) return false;
  const { status_code: status, error_type: type } = body as Record<string, unknown>;
  return status === 404 && type === 'user_not_found';
}

/**
 * What an answer means: the sessions (200), USER_NOT_FOUND (the API's own 404), or the typed
 * error the retry policy and the run act on. The key never travels further than this, whatever
 * the API echoes back: session data loses only the key itself, error texts also lose any other
 * `Bearer` token.
 */
export function classifyResponse(
  response: RawResponse,
  apiKey: string,
  nowMs: number,
): SessionsResponse | typeof USER_NOT_FOUND {
  const { statusCode } = response;
  if (statusCode === 200) {
    const text = withoutApiKey(response.text, apiKey);
    if (response.gzip) {
      throw new MalformedResponseError(
        `HTTP 200 with a gzip-compressed body (${response.bytes} bytes${response.contentEncoding ? `, Content-Encoding: ${response.contentEncoding}` : ''}) although the request asked for identity; the client does not decompress`,
      );
    }
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (error) {
      throw new MalformedResponseError(`HTTP 200 with a body that is not JSON (${text.length} bytes)`, {
        cause: error,
      });
    }
    const sessions = (body as { sessions?: unknown } | null)?.sessions;
    return { body, rawItems: Array.isArray(sessions) ? rawSessionItems(text, sessions) : undefined };
  }
  if (statusCode === 401 || statusCode === 403) throw new ApiAuthError(statusCode);
  if (statusCode === 429) throw new ApiThrottledError(parseRetryAfter(response.retryAfter, nowMs));
  if (statusCode >= 500) {
    throw new ApiRetryableError(`HTTP ${statusCode}`, parseRetryAfter(response.retryAfter, nowMs));
  }
  if (statusCode >= 300 && statusCode < 400) {
    const location =
      response.location === undefined ? '(no Location header)' : redactSecrets(response.location, apiKey);
    throw new ApiRequestError(
      statusCode,
      `HTTP ${statusCode} redirect to ${location}; redirects are not followed (the key must not travel to another host): set MOONKEY_API_URL to the final address`,
    );
  }
  if (statusCode === 404 && isUserNotFoundBody(response.text)) return USER_NOT_FOUND;
  const body = response.gzip
    ? `(gzip-compressed body of ${response.bytes} bytes)`
    : redactSecrets(response.text, apiKey).slice(0, ERROR_BODY_CHARS);
  throw new ApiRequestError(statusCode, `HTTP ${statusCode}: ${body}`);
}

const RETRYABLE_NETWORK_CODES = new Set([
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
]);

/**
 * A call that got no answer: retryable, its message led by the network code when it is one we
 * know (undici's and the OS's), the original kept as the cause. An AbortError stays itself.
 */
export function classifyNetworkError(error: unknown): Error {
  if (!(error instanceof Error)) return new ApiRetryableError(String(error), undefined);
  if (error.name === 'AbortError') return error;
  const code = (error as { code?: string }).code;
  if (code !== undefined && RETRYABLE_NETWORK_CODES.has(code)) {
    return new ApiRetryableError(`${code}: ${error.message}`, undefined, { cause: error });
  }
  return new ApiRetryableError(error.message, undefined, { cause: error });
}
