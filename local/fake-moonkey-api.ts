import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { gzipSync } from 'node:zlib';
import { isDeletedUser, sessionsFor } from './fake-sessions';

/**
 * One scripted answer for a user's next request. After a user's script is used up, requests get
 * the normal answer. `invalid-items` answers 200 with the user's real sessions plus items that
 * break the schema (INVALID_ITEMS unless `items` says which), to exercise the quarantine.
 * `echo-auth` answers `status` with a body that repeats the request's Authorization header, as a
 * careless proxy or API gateway might: what the job does with an error body must not leak the key.
 */
export type FaultStep =
  | { kind: 'status'; status: number; retryAfter?: string; body?: string; headers?: Record<string, string> }
  | { kind: 'hang' }
  | { kind: 'malformed' }
  | { kind: 'invalid-items'; items?: unknown[] }
  | { kind: 'echo-auth'; status: number }
  /**
   * 200 with a valid JSON body of `bytes` bytes (an empty session list plus padding), streamed in
   * 64 KiB chunks with backpressure so the fake never holds it; with `declareLength` it also sends
   * Content-Length (else chunked). `stats.streamedBytes` counts what was written before the
   * client hung up.
   */
  | { kind: 'huge-body'; bytes: number; declareLength?: boolean }
  /**
   * 200 whose valid body (padded to `bytes`, default its natural ~34) arrives one byte every
   * `intervalMs`: never idle long enough to trip an idle timeout.
   */
  | { kind: 'trickle'; intervalMs: number; bytes?: number }
  /** 200 with the user's sessions plus one item whose `factors` is an array nested `depth` deep. */
  | { kind: 'deeply-nested-item'; depth: number }
  /** 200 with the user's sessions gzip-compressed and `Content-Encoding: gzip`, asked for or not. */
  | { kind: 'gzip' }
  /** The normal answer, `ms` later than usual (a slow user); in flight at the server meanwhile. */
  | { kind: 'delay'; ms: number };

export interface FakeApiSettings {
  /** The only key the fake accepts, as `Authorization: Bearer <key>`. */
  apiKey: string;
  /** Epoch seconds that generated sessions are relative to. */
  baseTime: number;
  /** Added before every answer. */
  latencyMs: number;
  /** A hidden rate limit: above it the fake answers 429 with `Retry-After: 1`. */
  rateLimitRps: number | undefined;
  /** Per-user scripts, consumed one step per request. */
  faults: Record<string, FaultStep[]>;
  /** Users whose every answer carries schema-invalid items beside the valid ones. */
  invalidItemUsers: string[];
  /**
   * Users that no longer exist: with no scripted fault left, they answer 404 with MoonKey's JSON
   * error `{"status_code":404,"error_type":"user_not_found",...}`, as a user deleted after the
   * users table was read does.
   */
  deletedUsers: string[];
  /** Besides `deletedUsers`, this fraction (0 to 1) of all users is deleted (`isDeletedUser`). */
  deletedUserFraction: number;
  /** The status a wrong or missing key gets: MoonKey documents 401; some gateways send 403. */
  authFailureStatus: 401 | 403;
  /**
   * Fields added to every session (after the generated ones, so they win): a response that
   * carries names the job adds itself, such as `snapshot_id`, or fields MoonKey adds later.
   */
  extraSessionFields: Record<string, unknown>;
  /**
   * When above 0, every session gets a `padding` field of this many random base64 characters:
   * incompressible, so tests can fill multi-megabyte gzip parts with a few hundred users.
   */
  paddingChars: number;
  /**
   * Count requests per user in `stats.byUser` (tests assert on it). A benchmark turns it off: at
   * a million users that map alone costs the fake API memory and CPU on the job's shared cores.
   */
  trackUsers: boolean;
  /**
   * Error answers (scripted statuses, 401) echo the request's Authorization header in their JSON
   * body, as some gateways' error pages do: what a key-leak test needs.
   */
  echoAuthorization: boolean;
}

export interface FakeApiStats {
  requests: number;
  byStatus: Record<string, number>;
  /** Requests per user id (as decoded from the query). */
  byUser: Record<string, number>;
  /** Requests started in each whole second since start: what a rate cap is checked against. */
  perSecond: number[];
  /** Body bytes written by `huge-body` and `trickle` answers (until the client hung up). */
  streamedBytes: number;
  /**
   * Milliseconds since start at which each request arrived (kept only with `trackUsers`), so a
   * test can count the busiest sliding one-second window, not only whole-second buckets.
   */
  arrivals: number[];
  /** Requests received and not yet answered (or dropped) right now, counted by the server. */
  inFlight: number;
  /** The most requests in flight at once since the last reset: what a concurrency bound is checked against. */
  maxInFlight: number;
}

export interface FakeApi {
  readonly url: string;
  readonly settings: FakeApiSettings;
  readonly stats: FakeApiStats;
  configure(settings: Partial<FakeApiSettings>): void;
  /** Back to the settings it started with, then `settings` on top, with its counters cleared. */
  reset(settings?: Partial<FakeApiSettings>): void;
  resetStats(): void;
  close(): Promise<void>;
}

export const INVALID_ITEMS = [
  { id: '', user_id: 'x', note: 'empty id, missing everything else' },
  { id: 'sess_invalid_time', started_at: 'yesterday' },
];

const SESSIONS_PATH = '/v1/auth/sessions/list';

const NOT_FOUND_PAGE =
  '<!DOCTYPE html>\n<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1><p>The requested URL was not found on this server.</p></body></html>\n';

/**
 * Our own MoonKey: the one endpoint of the OpenAPI document, its bearer auth and response
 * shape, plus latency, a hidden rate limit and per-user fault scripts. Control endpoints under
 * `/_fake/` let a test or benchmark in another process configure it and read its counters.
 */
export async function startFakeMoonKeyApi(
  initial: Partial<FakeApiSettings> = {},
  port = 0,
): Promise<FakeApi> {
  const settings: FakeApiSettings = {
    apiKey: 'sk_test_local',
    baseTime: 1_764_115_200,
    latencyMs: 0,
    rateLimitRps: undefined,
    faults: {},
    invalidItemUsers: [],
    deletedUsers: [],
    deletedUserFraction: 0,
    authFailureStatus: 401,
    extraSessionFields: {},
    paddingChars: 0,
    trackUsers: true,
    echoAuthorization: false,
    ...initial,
  };
  const startedWith = structuredClone(settings);
  let invalidUsers = new Set(settings.invalidItemUsers);
  let deletedUsers = new Set(settings.deletedUsers);
  const isDeleted = (userId: string) =>
    deletedUsers.has(userId) || isDeletedUser(userId, settings.deletedUserFraction);
  let startedAt = Date.now();
  const stats: FakeApiStats = {
    requests: 0,
    byStatus: {},
    byUser: {},
    perSecond: [],
    streamedBytes: 0,
    arrivals: [],
    inFlight: 0,
    maxInFlight: 0,
  };
  let tokens = 0;
  let tokensAt = performance.now();
  const sockets = new Set<Socket>();

  const overRateLimit = (): boolean => {
    // 0 or null (JSON has no undefined) through /_fake/configure also means "no limit".
    if (!settings.rateLimitRps) return false;
    const capacity = Math.max(1, settings.rateLimitRps / 10);
    const now = performance.now();
    tokens = Math.min(capacity, tokens + ((now - tokensAt) / 1000) * settings.rateLimitRps);
    tokensAt = now;
    if (tokens < 1) return true;
    tokens -= 1;
    return false;
  };

  const send = (
    res: ServerResponse,
    status: number,
    body: string,
    headers: Record<string, string> = {},
    extraDelayMs = 0,
  ) => {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
    const write = () => {
      if (res.destroyed) return;
      res.writeHead(status, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        ...headers,
      });
      res.end(body);
    };
    const delayMs = settings.latencyMs + extraDelayMs;
    if (delayMs > 0) {
      // A client that gave up leaves no timer behind (a slow answer may be due in a minute).
      const timer = setTimeout(write, delayMs);
      res.once('close', () => clearTimeout(timer));
    } else write();
  };

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    // Split by hand rather than `new URL`: the fake shares the benchmark's cores with the job.
    const rawUrl = req.url ?? '/';
    const q = rawUrl.indexOf('?');
    const pathname = q === -1 ? rawUrl : rawUrl.slice(0, q);
    if (pathname.startsWith('/_fake/')) return control(pathname, req, res);
    stats.requests++;
    const sinceStart = Date.now() - startedAt;
    const second = Math.floor(sinceStart / 1000);
    stats.perSecond[second] = (stats.perSecond[second] ?? 0) + 1;
    if (settings.trackUsers) stats.arrivals.push(sinceStart);
    // In flight from arrival until the answer is sent or the client gives up on it.
    stats.inFlight++;
    stats.maxInFlight = Math.max(stats.maxInFlight, stats.inFlight);
    res.once('close', () => {
      stats.inFlight--;
    });
    // What a web server or gateway answers for a path it does not serve (a wrong base path): a page,
    // not the API's JSON error.
    if (pathname !== SESSIONS_PATH) {
      return send(res, 404, NOT_FOUND_PAGE, { 'content-type': 'text/html; charset=utf-8' });
    }
    if (req.method !== 'GET') return send(res, 405, JSON.stringify({ error: 'method_not_allowed' }));
    const echo = (body: Record<string, unknown>) =>
      JSON.stringify(
        settings.echoAuthorization
          ? { ...body, request: { authorization: req.headers.authorization } }
          : body,
      );
    if (req.headers.authorization !== `Bearer ${settings.apiKey}`) {
      return send(
        res,
        settings.authFailureStatus,
        echo({ error: 'unauthorized', message: 'invalid api key' }),
      );
    }
    const userId = q === -1 ? null : new URLSearchParams(rawUrl.slice(q + 1)).get('user_id');
    if (userId === null || userId === '') {
      return send(res, 400, JSON.stringify({ error: 'bad_request', message: 'user_id is required' }));
    }
    if (settings.trackUsers) stats.byUser[userId] = (stats.byUser[userId] ?? 0) + 1;
    if (overRateLimit())
      return send(res, 429, JSON.stringify({ error: 'rate_limited' }), { 'retry-after': '1' });
    const step = settings.faults[userId]?.shift();
    if (step?.kind === 'hang') return; // never answers; the client's timeout must fire
    if (step?.kind === 'status') {
      return send(res, step.status, step.body ?? echo({ error: `status_${step.status}` }), {
        ...(step.retryAfter === undefined ? {} : { 'retry-after': step.retryAfter }),
        ...step.headers,
      });
    }
    if (step?.kind === 'echo-auth') {
      const body = { error: 'bad_request', message: `rejected request with ${req.headers.authorization}` };
      return send(res, step.status, JSON.stringify(body));
    }
    if (step?.kind === 'malformed') return send(res, 200, '{"sessions": [{"id": "sess_trunc');
    if (step === undefined && isDeleted(userId)) {
      return send(
        res,
        404,
        JSON.stringify({
          status_code: 404,
          error_type: 'user_not_found',
          message: 'User could not be found.',
        }),
      );
    }
    if (step?.kind === 'huge-body') return streamHugeBody(res, step.bytes, step.declareLength === true);
    if (step?.kind === 'trickle') return trickle(res, step.intervalMs, step.bytes);
    let sessions: unknown[] = sessionsFor(userId, settings.baseTime);
    // Only when asked: the benchmark's fake shares the machine with the job.
    if (settings.paddingChars > 0 || Object.keys(settings.extraSessionFields).length > 0) {
      sessions = sessions.map((session) => ({
        ...(session as object),
        ...settings.extraSessionFields,
        ...(settings.paddingChars > 0 ? { padding: incompressible(settings.paddingChars) } : {}),
      }));
    }
    if (step?.kind === 'invalid-items') sessions.push(...(step.items ?? INVALID_ITEMS));
    else if (invalidUsers.has(userId)) sessions.push(...INVALID_ITEMS);
    if (step?.kind === 'gzip') {
      stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1;
      const body = gzipSync(JSON.stringify({ sessions }));
      res.writeHead(200, {
        'content-type': 'application/json',
        'content-encoding': 'gzip',
        'content-length': body.length,
      });
      return res.end(body);
    }
    if (step?.kind === 'deeply-nested-item') {
      // Built as text: JSON.stringify of such a value would itself overflow the stack.
      const deep = `{"id":"sess_deep","user_id":${JSON.stringify(userId)},"factors":${'['.repeat(step.depth)}${']'.repeat(step.depth)}}`;
      const listed = JSON.stringify({ sessions });
      return send(res, 200, `${listed.slice(0, -2)}${sessions.length > 0 ? ',' : ''}${deep}]}`);
    }
    return send(res, 200, JSON.stringify({ sessions }), {}, step?.kind === 'delay' ? step.ms : 0);
  };

  /** Writes `bytes` of valid JSON in chunks, waiting for drain, stopping when the client goes away. */
  const streamHugeBody = (res: ServerResponse, bytes: number, declareLength: boolean) => {
    stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1;
    const head = '{"sessions":[],"padding":"';
    const tail = '"}';
    res.writeHead(200, {
      'content-type': 'application/json',
      ...(declareLength ? { 'content-length': bytes } : {}),
    });
    const chunk = Buffer.alloc(64 * 1024, 'x');
    let left = bytes - head.length - tail.length;
    res.write(head);
    stats.streamedBytes += head.length;
    const pump = () => {
      while (left > 0 && !res.destroyed) {
        const piece = left >= chunk.length ? chunk : chunk.subarray(0, left);
        left -= piece.length;
        stats.streamedBytes += piece.length;
        if (!res.write(piece)) return void res.once('drain', pump);
      }
      if (!res.destroyed)
        res.end(tail, () => {
          stats.streamedBytes += tail.length;
        });
    };
    res.on('close', () => res.removeListener('drain', pump));
    pump();
  };

  /** A valid empty answer, one byte every `intervalMs`, until done or the client hangs up. */
  const trickle = (res: ServerResponse, intervalMs: number, bytes = 0) => {
    stats.byStatus[200] = (stats.byStatus[200] ?? 0) + 1;
    const natural = JSON.stringify({ sessions: [], note: 'trickling' });
    // `{"sessions":[],"note":""}` is 25 bytes; the note pads it to `bytes`.
    const body = Buffer.from(
      bytes > natural.length ? JSON.stringify({ sessions: [], note: 'x'.repeat(bytes - 25) }) : natural,
    );
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': body.length });
    let sent = 0;
    const timer = setInterval(() => {
      if (res.destroyed) return clearInterval(timer);
      res.write(body.subarray(sent, sent + 1));
      sent++;
      stats.streamedBytes++;
      if (sent === body.length) {
        clearInterval(timer);
        res.end();
      }
    }, intervalMs);
    res.on('close', () => clearInterval(timer));
  };

  const control = (path: string, req: IncomingMessage, res: ServerResponse) => {
    const reply = (value: unknown) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(value));
    };
    if (path === '/_fake/stats') return reply(stats);
    if (path === '/_fake/reset-stats' && req.method === 'POST') {
      api.resetStats();
      return reply({ ok: true });
    }
    if (path === '/_fake/configure' && req.method === 'POST') {
      let body = '';
      req.on('data', (chunk: Buffer) => {
        body += chunk.toString();
      });
      req.on('end', () => {
        api.configure(JSON.parse(body) as Partial<FakeApiSettings>);
        reply({ ok: true });
      });
      return;
    }
    res.writeHead(404).end();
  };

  const server: Server = createServer({ keepAlive: true }, handle);
  server.keepAliveTimeout = 65_000;
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  const { port: actualPort } = server.address() as AddressInfo;

  const api: FakeApi = {
    url: `http://127.0.0.1:${actualPort}`,
    settings,
    stats,
    configure(update) {
      Object.assign(settings, update);
      invalidUsers = new Set(settings.invalidItemUsers);
      deletedUsers = new Set(settings.deletedUsers);
    },
    reset(update = {}) {
      api.configure({ ...structuredClone(startedWith), ...update });
      api.resetStats();
    },
    resetStats() {
      startedAt = Date.now();
      stats.requests = 0;
      stats.byStatus = {};
      stats.byUser = {};
      stats.perSecond = [];
      stats.streamedBytes = 0;
      stats.arrivals = [];
      stats.maxInFlight = stats.inFlight;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
  return api;
}

/** `chars` random base64 characters: gzip cannot shrink them much below 3/4 of their length. */
function incompressible(chars: number): string {
  return randomBytes(Math.ceil((chars * 3) / 4))
    .toString('base64')
    .slice(0, chars);
}
