import { type Dispatcher, Pool } from 'undici';
import {
  ApiAuthError,
  ApiRequestError,
  ApiRequestTimeoutError,
  ApiRetryableError,
  ExportError,
  MalformedResponseError,
  ResponseTooLargeError,
} from '../core/errors';

export interface SessionsClientOptions {
  readonly apiUrl: string;
  readonly apiKey: string;
  readonly connections: number;
  /** Idle time: waiting for headers, and between two body chunks. */
  readonly requestTimeoutMs: number;
  /** One attempt's whole time, dispatch to the body's last byte. */
  readonly requestTotalTimeoutMs: number;
  /** Bytes of body read at most; past it the call fails and the connection is closed. */
  readonly maxResponseBytes: number;
}

/** How much of an error body goes into a message (and so into logs, the manifest and failed-users/). */
const ERROR_BODY_CHARS = 200;

const REDACTED = '[REDACTED]';

/**
 * Removes the API key, and any `Bearer <token>`, from a text taken from a response, before it is
 * stored or logged: a gateway or an API error page that echoes the request's Authorization header
 * would otherwise put the key into logs, the manifest and failed-users/.
 */
export function redactSecrets(text: string, apiKey: string): string {
  return withoutKey(text, apiKey).replace(
    /(bearer)(\s+|%20|\+)(?!\[REDACTED\])[^\s"'\\,;&<>]+/gi,
    `$1$2${REDACTED}`,
  );
}

function withoutKey(text: string, apiKey: string): string {
  return apiKey.length > 0 && text.includes(apiKey) ? text.split(apiKey).join(REDACTED) : text;
}

/** gzip's magic bytes: how a compressed body is recognised even without Content-Encoding. */
const isGzip = (head: Buffer | undefined) => head !== undefined && head[0] === 0x1f && head[1] === 0x8b;

/**
 * What a call resolves to when MoonKey says the user does not exist (404 with the API's
 * `user_not_found` error): a user deleted since the users table was read. Not an error: such a
 * user has no sessions, is not retried and is not a failed user. A symbol, so no JSON body can
 * ever be mistaken for it.
 */
export const USER_NOT_FOUND: unique symbol = Symbol('MoonKey user not found');

/**
 * One attempt at `GET /v1/auth/sessions/list`: the parsed JSON body, USER_NOT_FOUND, or a typed
 * error.
 */
export type FetchSessions = (userId: string, signal: AbortSignal) => Promise<unknown>;

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
  override name = 'ApiThrottledError';

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
  // identity: the client does not decompress, so it says so; a gzip answer anyway is reported as such.
  const headers = [
    'authorization',
    `Bearer ${options.apiKey}`,
    'accept',
    'application/json',
    'accept-encoding',
    'identity',
  ];
  const limits = { maxBytes: options.maxResponseBytes, totalTimeoutMs: options.requestTotalTimeoutMs };
  const redact = (text: string) => redactSecrets(text, options.apiKey);

  const fetchSessions: FetchSessions = async (userId, signal) => {
    if (signal.aborted) throw signal.reason;
    let response: RawResponse;
    try {
      response = await new Promise<RawResponse>((resolve, reject) => {
        const call = new SessionsCall(signal, limits, resolve, reject);
        pool.dispatch(
          {
            method: 'GET',
            path: `${basePath}/v1/auth/sessions/list?user_id=${encodeURIComponent(userId)}`,
            headers,
            headersTimeout: options.requestTimeoutMs,
            bodyTimeout: options.requestTimeoutMs,
          },
          call,
        );
      });
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof ExportError) throw error;
      throw classifyNetworkError(error);
    }
    const { statusCode } = response;
    // The key never travels further than this client, whatever the API echoes back. Session data
    // loses only the key itself; error texts also lose any other `Bearer` token.
    const text = statusCode === 200 ? withoutKey(response.text, options.apiKey) : redact(response.text);
    if (statusCode === 200) {
      if (response.gzip) {
        throw new MalformedResponseError(
          `HTTP 200 with a gzip-compressed body (${response.bytes} bytes${response.contentEncoding ? `, Content-Encoding: ${response.contentEncoding}` : ''}) although the request asked for identity; the client does not decompress`,
        );
      }
      try {
        const body: unknown = JSON.parse(text);
        indexRawItems(text, body);
        return body;
      } catch (error) {
        throw new MalformedResponseError(`HTTP 200 with a body that is not JSON (${text.length} bytes)`, {
          cause: error,
        });
      }
    }
    if (statusCode === 401 || statusCode === 403) throw new ApiAuthError(statusCode);
    if (statusCode === 429) throw new ApiThrottledError(parseRetryAfter(response.retryAfter, Date.now()));
    if (statusCode >= 500) {
      throw new ApiRetryableError(`HTTP ${statusCode}`, parseRetryAfter(response.retryAfter, Date.now()));
    }
    if (statusCode >= 300 && statusCode < 400) {
      const location = response.location === undefined ? '(no Location header)' : redact(response.location);
      throw new ApiRequestError(
        statusCode,
        `HTTP ${statusCode} redirect to ${location}; redirects are not followed (the key must not travel to another host): set MOONKEY_API_URL to the final address`,
      );
    }
    if (statusCode === 404 && isUserNotFoundBody(response.text)) return USER_NOT_FOUND;
    const body = response.gzip
      ? `(gzip-compressed body of ${response.bytes} bytes)`
      : text.slice(0, ERROR_BODY_CHARS);
    throw new ApiRequestError(statusCode, `HTTP ${statusCode}: ${body}`);
  };

  return { fetchSessions, close: () => pool.close() };
}

/**
 * The exact JSON text of each session item of a response, keyed by the parsed item. Writing a
 * session "as the API returned it" then needs no JSON.stringify (about 5 µs per session, the
 * job's largest single cost after JSON.parse), and it is also the most faithful copy.
 */
const rawItemText = new WeakMap<object, string>();

/** The item's text as the API sent it, when the response was one line we could index. */
export function rawJsonOf(item: object): string | undefined {
  return rawItemText.get(item);
}

function indexRawItems(text: string, body: unknown): void {
  const sessions = (body as { sessions?: unknown } | null)?.sessions;
  if (!Array.isArray(sessions) || sessions.length === 0) return;
  const spans = sessionItemSpans(text);
  if (spans === undefined || spans.length !== sessions.length * 2) return;
  for (let i = 0; i < sessions.length; i++) {
    const item: unknown = sessions[i];
    if (typeof item === 'object' && item !== null) {
      rawItemText.set(item, text.slice(spans[2 * i] as number, spans[2 * i + 1] as number));
    }
  }
}

const isSpace = (c: number) => c === 0x20 || c === 0x09;

/**
 * [start, end) pairs of the object elements of the top-level `"sessions"` array in a JSON text,
 * or undefined whenever the text is anything but the plain case: more than one line (an NDJSON
 * record must be one line), a top-level key with an escape or a repeated `"sessions"` key (so
 * JSON.parse's "last key wins" cannot pick a different array), or an element that is not an
 * object. Undefined only means "use JSON.stringify"; it never rejects a response.
 */
export function sessionItemSpans(text: string): number[] | undefined {
  if (text.includes('\n') || text.includes('\r')) return undefined;
  const n = text.length;
  const spans: number[] = [];
  let depth = 0;
  /** Depth of the sessions array's elements while inside it; -1 outside. */
  let inArray = -1;
  let found = false;
  let elementStart = -1;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) {
      // Jump to the closing quote: one not preceded by an odd number of backslashes.
      const start = i;
      let end = text.indexOf('"', i + 1);
      while (end !== -1 && text.charCodeAt(end - 1) === 0x5c) {
        let slashes = 1;
        while (text.charCodeAt(end - 1 - slashes) === 0x5c) slashes++;
        if (slashes % 2 === 0) break;
        end = text.indexOf('"', end + 1);
      }
      if (end === -1) return undefined;
      i = end + 1;
      if (depth === inArray && elementStart === -1) return undefined;
      if (depth !== 1 || inArray !== -1) continue;
      let j = i;
      while (j < n && isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) !== 0x3a) continue;
      if (text.lastIndexOf('\\', end) > start) return undefined;
      if (i - start - 2 !== 8 || !text.startsWith('sessions', start + 1)) continue;
      if (found) return undefined;
      found = true;
      j++;
      while (j < n && isSpace(text.charCodeAt(j))) j++;
      if (text.charCodeAt(j) !== 0x5b) return undefined;
      depth = 2;
      inArray = 2;
      i = j + 1;
      continue;
    }
    if (c === 0x7b || c === 0x5b) {
      if (depth === inArray) {
        if (c !== 0x7b) return undefined;
        elementStart = i;
      }
      depth++;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
      if (depth === inArray && elementStart !== -1) {
        spans.push(elementStart, i + 1);
        elementStart = -1;
      } else if (inArray !== -1 && depth === inArray - 1) {
        inArray = -1;
      }
    } else if (depth === inArray && elementStart === -1 && c !== 0x2c && !isSpace(c)) {
      return undefined;
    }
    i++;
  }
  return found && depth === 0 ? spans : undefined;
}

interface RawResponse {
  readonly statusCode: number;
  readonly retryAfter: string | string[] | undefined;
  readonly location: string | undefined;
  readonly contentEncoding: string | undefined;
  /** Declared by Content-Encoding or recognised by gzip's magic bytes. */
  readonly gzip: boolean;
  readonly bytes: number;
  readonly text: string;
}

interface CallLimits {
  readonly maxBytes: number;
  readonly totalTimeoutMs: number;
}

const firstHeader = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/**
 * One call as an undici dispatch handler: the body's chunks go straight into an array and the
 * promise settles once, with no Readable body stream, no `body.text()` promise chain and no
 * parsed header object per call (the request API's costs; about a third of the client's CPU at
 * thousands of calls per second).
 *
 * It is also the call's abort handle. Handing undici the run's AbortSignal would add and remove
 * one listener per call on an EventTarget holding one per call in flight, O(in flight) each time;
 * instead each run signal gets one listener, the calls in flight sit in a Set, and arming or
 * disarming a call is O(1).
 */
class SessionsCall implements Dispatcher.DispatchHandler {
  private static readonly inFlight = new WeakMap<AbortSignal, Set<SessionsCall>>();
  private readonly calls: Set<SessionsCall>;
  private controller: Dispatcher.DispatchController | undefined;
  private abortReason: Error | undefined;
  private statusCode = 0;
  private retryAfter: string | string[] | undefined;
  private location: string | undefined;
  private contentEncoding: string | undefined;
  private chunks: Buffer[] = [];
  private bytes = 0;
  private settled = false;
  private readonly deadline: NodeJS.Timeout;

  constructor(
    signal: AbortSignal,
    private readonly limits: CallLimits,
    private readonly resolve: (response: RawResponse) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.deadline = setTimeout(
      () =>
        this.failWith(
          new ApiRequestTimeoutError(
            `the request took longer than EXPORT_REQUEST_TOTAL_TIMEOUT_MS=${limits.totalTimeoutMs} (${this.bytes} body bytes received)`,
            undefined,
          ),
        ),
      limits.totalTimeoutMs,
    );
    this.deadline.unref();
    let calls = SessionsCall.inFlight.get(signal);
    if (calls === undefined) {
      const group = new Set<SessionsCall>();
      calls = group;
      SessionsCall.inFlight.set(signal, group);
      signal.addEventListener(
        'abort',
        () => {
          for (const call of group) call.abort(signal.reason as Error);
          group.clear();
        },
        { once: true },
      );
    }
    this.calls = calls;
    calls.add(this);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.controller = controller;
    if (this.abortReason !== undefined) controller.abort(this.abortReason);
  }

  onResponseStart(
    _controller: Dispatcher.DispatchController,
    statusCode: number,
    headers: Record<string, string | string[] | undefined>,
  ): void {
    this.statusCode = statusCode;
    this.retryAfter = headers['retry-after'];
    this.location = firstHeader(headers.location);
    this.contentEncoding = firstHeader(headers['content-encoding']);
    const declared = Number(firstHeader(headers['content-length']));
    if (declared > this.limits.maxBytes) this.tooLarge(`declares Content-Length: ${declared}`);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.bytes += chunk.length;
    // Checked before keeping the chunk: memory never holds more than the limit.
    if (this.bytes > this.limits.maxBytes) this.tooLarge(`exceeded it after ${this.bytes} bytes`);
    else this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.finish()) return;
    const chunks = this.chunks;
    const head = chunks[0];
    const gzip = isGzip(head) || (this.contentEncoding !== undefined && /gzip/i.test(this.contentEncoding));
    const text = gzip
      ? ''
      : chunks.length === 1
        ? (head as Buffer).toString('utf8')
        : Buffer.concat(chunks).toString('utf8');
    this.chunks = [];
    this.resolve({
      statusCode: this.statusCode,
      retryAfter: this.retryAfter,
      location: this.location,
      contentEncoding: this.contentEncoding,
      gzip,
      bytes: this.bytes,
      text,
    });
  }

  onResponseError(_controller: Dispatcher.DispatchController, error: Error): void {
    if (this.finish()) return;
    this.reject(error);
  }

  private tooLarge(detail: string): void {
    this.failWith(
      new ResponseTooLargeError(
        this.limits.maxBytes,
        `HTTP ${this.statusCode} response larger than EXPORT_MAX_RESPONSE_BYTES=${this.limits.maxBytes} (${detail}); reading stopped and the connection was closed`,
      ),
    );
  }

  /** Settles the call with `error` and tears the request down: no more body is read or kept. */
  private failWith(error: Error): void {
    if (this.finish()) return;
    this.chunks = [];
    this.reject(error);
    this.abort(error);
  }

  private abort(reason: Error): void {
    this.abortReason = reason;
    // Not started yet: onRequestStart aborts it as soon as undici hands it a connection.
    this.controller?.abort(reason);
  }

  /** Marks the call settled; true when it already was. */
  private finish(): boolean {
    if (this.settled) return true;
    this.settled = true;
    clearTimeout(this.deadline);
    this.calls.delete(this);
    return false;
  }
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
