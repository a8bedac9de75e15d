import { Pool } from 'undici';
import { ApiAuthError, ApiRequestError, ApiRetryableError, MalformedResponseError } from './errors';

export interface SessionsClientOptions {
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly connections: number;
  readonly requestTimeoutMs: number;
}

/** One attempt at `GET /v1/auth/sessions/list`: the parsed JSON body, or a typed error. */
export type FetchSessions = (userId: string, signal: AbortSignal) => Promise<unknown>;

export interface SessionsClient {
  readonly fetchSessions: FetchSessions;
  close(): Promise<void>;
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
 * HTTP 429: retried like any retryable error, and also the signal adaptive concurrency
 * (AIMD) shrinks its window on; a 5xx or a timeout says nothing about our rate.
 */
export class ApiThrottledError extends ApiRetryableError {
  constructor(retryAfterMs: number | undefined) {
    super('HTTP 429', retryAfterMs);
  }
}

/** `Retry-After` is either delta-seconds or an HTTP date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim()) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}

/**
 * MoonKey's list-sessions call over undici's Pool: keep-alive connections, no per-call
 * allocation of a fetch Request/Response pair (about 5x cheaper in CPU than `fetch`, which
 * matters at thousands of calls per second). The API key lives only in this closure.
 */
export function createSessionsClient(options: SessionsClientOptions): SessionsClient {
  const origin = new URL(options.apiUrl);
  const basePath = origin.pathname.replace(/\/+$/, '');
  const pool = new Pool(origin.origin, {
    connections: options.connections,
    pipelining: 1,
    keepAliveTimeout: 30_000,
    connect: { timeout: options.requestTimeoutMs },
  });
  const headers = { authorization: `Bearer ${options.apiKey}`, accept: 'application/json' };

  const fetchSessions: FetchSessions = async (userId, signal) => {
    let response: Awaited<ReturnType<Pool['request']>>;
    try {
      response = await pool.request({
        method: 'GET',
        path: `${basePath}/v1/auth/sessions/list?user_id=${encodeURIComponent(userId)}`,
        headers,
        headersTimeout: options.requestTimeoutMs,
        bodyTimeout: options.requestTimeoutMs,
        signal,
      });
    } catch (error) {
      throw classifyNetworkError(error);
    }
    const { statusCode } = response;
    let text: string;
    try {
      text = await response.body.text();
    } catch (error) {
      throw classifyNetworkError(error);
    }
    if (statusCode === 200) {
      try {
        return JSON.parse(text);
      } catch (error) {
        throw new MalformedResponseError(`HTTP 200 with a body that is not JSON (${text.length} bytes)`, {
          cause: error,
        });
      }
    }
    if (statusCode === 401 || statusCode === 403) throw new ApiAuthError(statusCode);
    if (statusCode === 429) {
      throw new ApiThrottledError(parseRetryAfter(response.headers['retry-after'], Date.now()));
    }
    if (statusCode >= 500) {
      throw new ApiRetryableError(
        `HTTP ${statusCode}`,
        parseRetryAfter(response.headers['retry-after'], Date.now()),
      );
    }
    throw new ApiRequestError(statusCode, `HTTP ${statusCode}: ${text.slice(0, 200)}`);
  };

  return { fetchSessions, close: () => pool.close() };
}

function classifyNetworkError(error: unknown): Error {
  if (!(error instanceof Error)) return new ApiRetryableError(String(error), undefined);
  if (error.name === 'AbortError') return error;
  const code = (error as { code?: string }).code;
  if (code !== undefined && RETRYABLE_NETWORK_CODES.has(code)) {
    return new ApiRetryableError(`${code}: ${error.message}`, undefined, { cause: error });
  }
  return new ApiRetryableError(error.message, undefined, { cause: error });
}
