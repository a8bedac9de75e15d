import { type Dispatcher, Pool } from 'undici';
import { ApiRequestTimeoutError, ResponseTooLargeError } from '../core/errors';

export interface HttpTransportOptions {
  /** The API's origin and base path; requests add their path to it. */
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

/** One answer, whatever its status: the client decides what it means (classify-response.ts). */
export interface RawResponse {
  readonly statusCode: number;
  readonly retryAfter: string | string[] | undefined;
  readonly location: string | undefined;
  readonly contentEncoding: string | undefined;
  /** Declared by Content-Encoding or recognised by gzip's magic bytes. */
  readonly gzip: boolean;
  readonly bytes: number;
  /** The body as UTF-8; empty for a gzip body, which is never decoded. */
  readonly text: string;
}

export interface HttpTransport {
  /**
   * GETs `pathAndQuery` under the base URL. Rejects with the signal's reason once it aborts, with
   * ResponseTooLargeError or ApiRequestTimeoutError past the options' bounds, or with undici's
   * own error for a network failure.
   */
  get(pathAndQuery: string, signal: AbortSignal): Promise<RawResponse>;
  close(): Promise<void>;
}

/** gzip's magic bytes: how a compressed body is recognised even without Content-Encoding. */
const isGzip = (head: Buffer | undefined) => head !== undefined && head[0] === 0x1f && head[1] === 0x8b;

const firstHeader = (value: string | string[] | undefined) => (Array.isArray(value) ? value[0] : value);

/** The calls in flight of each run signal, so one listener per signal aborts them all. */
type InFlight = WeakMap<AbortSignal, Set<Call>>;

/** What one call may take: its body bytes and its whole time (the options' two limits). */
interface CallBounds {
  readonly maxBytes: number;
  readonly totalTimeoutMs: number;
}

/**
 * GETs over undici's Pool: keep-alive connections, no per-call allocation of a fetch
 * Request/Response pair (about 5x cheaper in CPU than `fetch`, which matters at thousands of
 * calls per second). The API key lives only in this closure's headers. Redirects are not
 * followed: undici's Pool does not follow them, so the key never travels to another host.
 */
export function createHttpTransport(options: HttpTransportOptions): HttpTransport {
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
  const bounds = { maxBytes: options.maxResponseBytes, totalTimeoutMs: options.requestTotalTimeoutMs };
  const inFlight: InFlight = new WeakMap();
  return {
    get: (pathAndQuery, signal) =>
      new Promise<RawResponse>((resolve, reject) => {
        const call = new Call(signal, inFlight, bounds, resolve, reject);
        pool.dispatch(
          {
            method: 'GET',
            path: `${basePath}${pathAndQuery}`,
            headers,
            headersTimeout: options.requestTimeoutMs,
            bodyTimeout: options.requestTimeoutMs,
          },
          call,
        );
      }),
    close: () => pool.close(),
  };
}

/**
 * The set of `signal`'s calls in flight, with the one abort listener that aborts them. Outside
 * Call's constructor on purpose: a listener created there would share the constructor's closure
 * scope, `this` included, and the live signal would keep its first call (and that call's
 * settled promise with the whole response body) for as long as the run lasts.
 */
function callsOf(signal: AbortSignal, inFlight: InFlight): Set<Call> {
  const known = inFlight.get(signal);
  if (known !== undefined) return known;
  const group = new Set<Call>();
  inFlight.set(signal, group);
  signal.addEventListener(
    'abort',
    () => {
      for (const call of group) call.abort(signal.reason as Error);
      group.clear();
    },
    { once: true },
  );
  return group;
}

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
class Call implements Dispatcher.DispatchHandler {
  private readonly calls: Set<Call>;
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
    inFlight: InFlight,
    private readonly bounds: CallBounds,
    private readonly resolve: (response: RawResponse) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.deadline = setTimeout(
      () =>
        this.failWith(
          new ApiRequestTimeoutError(
            `the request took longer than EXPORT_REQUEST_TOTAL_TIMEOUT_MS=${bounds.totalTimeoutMs} (${this.bytes} body bytes received)`,
            undefined,
          ),
        ),
      bounds.totalTimeoutMs,
    );
    this.deadline.unref();
    this.calls = callsOf(signal, inFlight);
    this.calls.add(this);
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
    if (declared > this.bounds.maxBytes) this.tooLarge(`declares Content-Length: ${declared}`);
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.settled) return;
    this.bytes += chunk.length;
    // Checked before keeping the chunk: memory never holds more than the limit.
    if (this.bytes > this.bounds.maxBytes) this.tooLarge(`exceeded it after ${this.bytes} bytes`);
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
        this.bounds.maxBytes,
        `HTTP ${this.statusCode} response larger than EXPORT_MAX_RESPONSE_BYTES=${this.bounds.maxBytes} (${detail}); reading stopped and the connection was closed`,
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

  /** Not private: the run signal's abort listener (callsOf) calls it. */
  abort(reason: Error): void {
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
