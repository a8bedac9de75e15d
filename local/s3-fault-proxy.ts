import {
  createServer,
  request as httpRequest,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** The S3 operations a fault can target, told apart by method, path and query like S3 does. */
export type S3Operation =
  | 'CreateMultipartUpload'
  | 'UploadPart'
  | 'CompleteMultipartUpload'
  | 'AbortMultipartUpload'
  | 'PutObject'
  | 'DeleteObjects'
  | 'GetObject'
  | 'HeadObject'
  | 'ListObjects'
  | 'Other';

export interface S3Call {
  readonly operation: S3Operation;
  /** `<bucket>/<key>` as sent (path-style), decoded. */
  readonly path: string;
  /** UploadPart's part number. */
  readonly partNumber?: number;
  /** Request body bytes as they crossed the wire (set once the body has arrived). */
  bytes: number;
  /** The fault applied to this call, if any. */
  fault?: FaultRule['action'];
  /** Why the fault could not be applied (the store refused the replacement): a test set-up error. */
  faultError?: string;
}

export interface FaultRule {
  readonly operation: S3Operation;
  /** Only calls whose path contains this. */
  readonly pathIncludes?: string;
  /** Matching calls let through before the fault starts. */
  readonly after?: number;
  /** How many matching calls get the fault once it starts; unlimited when omitted. */
  readonly times?: number;
  /**
   * `error`: answer 500 InternalError (the SDK retries it) without forwarding. `deny`: answer 403
   * AccessDenied (not retried). `hold`: never answer (a process killed mid-call).
   *
   * A store that completes short (CompleteMultipartUpload only): `drop-last-part` forwards the
   * request with its last part left out of the list, so the store assembles less than was
   * written (an empty object from a one-part upload) and answers for what it assembled.
   * `truncate` and `empty` forward it as sent, then replace the completed object with its first
   * half, or with nothing, before relaying the store's answer for the whole object.
   */
  readonly action: 'error' | 'deny' | 'hold' | 'drop-last-part' | 'truncate' | 'empty';
}

export interface S3FaultProxy {
  readonly endpoint: string;
  /** Every call seen, in order. */
  readonly calls: S3Call[];
  setRules(rules: readonly FaultRule[]): void;
  /** Resolves when a call is being held (the test can then kill the process that made it). */
  whenHolding(): Promise<S3Call>;
  close(): Promise<void>;
}

function classify(req: IncomingMessage): S3Call {
  const url = new URL(req.url ?? '/', 'http://proxy');
  const q = url.searchParams;
  const path = decodeURIComponent(url.pathname.slice(1));
  const method = req.method ?? 'GET';
  const partNumber = q.has('partNumber') ? Number(q.get('partNumber')) : undefined;
  let operation: S3Operation = 'Other';
  if (method === 'POST' && q.has('uploads')) operation = 'CreateMultipartUpload';
  else if (method === 'PUT' && q.has('partNumber') && q.has('uploadId')) operation = 'UploadPart';
  else if (method === 'POST' && q.has('uploadId')) operation = 'CompleteMultipartUpload';
  else if (method === 'DELETE' && q.has('uploadId')) operation = 'AbortMultipartUpload';
  else if (method === 'POST' && q.has('delete')) operation = 'DeleteObjects';
  else if (method === 'PUT') operation = 'PutObject';
  else if (method === 'HEAD') operation = 'HeadObject';
  else if (method === 'GET' && (q.has('list-type') || !path.includes('/'))) operation = 'ListObjects';
  else if (method === 'GET') operation = 'GetObject';
  return { operation, path, ...(partNumber === undefined ? {} : { partNumber }), bytes: 0 };
}

const S3_ERROR = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>InternalError</Code><Message>injected by the S3 fault proxy</Message></Error>`;
const S3_DENIED = `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>AccessDenied</Code><Message>Access Denied by the S3 fault proxy</Message></Error>`;

/**
 * A small HTTP proxy in front of the local S3 server that fails or holds chosen S3 calls: how the
 * commit protocol's tests inject "Complete fails for file k", "DeleteObjects fails", "the manifest
 * PUT fails", "the process dies while its 4th Complete is in flight", and "the store completes
 * file k short" (a 200 for an object that holds less than was written). Everything else passes
 * through byte for byte, so the job runs its real SDK code against a real S3 emulator. It also
 * records every call with its body size: the emulator forgets part boundaries once an upload
 * completes, so part sizes are read here, as S3 would have received them.
 */
export async function startS3FaultProxy(upstream: string): Promise<S3FaultProxy> {
  const target = new URL(upstream);
  let rules: { rule: FaultRule; seen: number; applied: number }[] = [];
  const calls: S3Call[] = [];
  const holdWaiters: ((call: S3Call) => void)[] = [];
  const held: { call: S3Call; socket: Socket }[] = [];
  const sockets = new Set<Socket>();

  const server: Server = createServer((req, res) => {
    const call = classify(req);
    calls.push(call);
    req.on('data', (chunk: Buffer) => {
      call.bytes += chunk.length;
    });
    for (const entry of rules) {
      const { rule } = entry;
      if (rule.operation !== call.operation) continue;
      if (rule.pathIncludes !== undefined && !call.path.includes(rule.pathIncludes)) continue;
      entry.seen++;
      if (entry.seen <= (rule.after ?? 0)) continue;
      if (rule.times !== undefined && entry.applied >= rule.times) continue;
      entry.applied++;
      call.fault = rule.action;
      if (rule.action === 'drop-last-part' || rule.action === 'truncate' || rule.action === 'empty') {
        completeShort(call, req, res, rule.action);
        return;
      }
      req.resume();
      if (rule.action === 'hold') {
        held.push({ call, socket: req.socket });
        for (const wake of holdWaiters.splice(0)) wake(call);
        return;
      }
      req.on('end', () => {
        res.writeHead(rule.action === 'deny' ? 403 : 500, { 'content-type': 'application/xml' });
        res.end(rule.action === 'deny' ? S3_DENIED : S3_ERROR);
      });
      return;
    }
    const upstreamReq = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: target.host },
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    upstreamReq.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(upstreamReq);
  });

  /** One request to the store, body in hand, answer read whole. */
  function toUpstream(
    method: string,
    path: string,
    headers: IncomingHttpHeaders,
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingHttpHeaders; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const upstreamReq = httpRequest(
        {
          host: target.hostname,
          port: target.port,
          method,
          path,
          headers: { ...headers, host: target.host, 'content-length': String(body.length) },
        },
        (upstreamRes) => {
          const chunks: Buffer[] = [];
          upstreamRes.on('data', (chunk: Buffer) => chunks.push(chunk));
          upstreamRes.on('end', () =>
            resolve({
              status: upstreamRes.statusCode ?? 502,
              headers: upstreamRes.headers,
              body: Buffer.concat(chunks),
            }),
          );
          upstreamRes.on('error', reject);
        },
      );
      upstreamReq.on('error', reject);
      upstreamReq.end(body);
    });
  }

  function completeShort(
    call: S3Call,
    req: IncomingMessage,
    res: ServerResponse,
    action: 'drop-last-part' | 'truncate' | 'empty',
  ): void {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', async () => {
      try {
        let body = Buffer.concat(chunks);
        if (action === 'drop-last-part') {
          const xml = body.toString('utf8');
          const start = xml.lastIndexOf('<Part>');
          const end = xml.indexOf('</Part>', start) + '</Part>'.length;
          body = Buffer.from(start < 0 ? xml : xml.slice(0, start) + xml.slice(end));
        }
        const url = req.url ?? '/';
        const answer = await toUpstream(req.method ?? 'POST', url, req.headers, body);
        if (answer.status === 200 && action !== 'drop-last-part') {
          // Plain requests: the local S3 server does not check signatures. The new object
          // carries no checksum, like any object written without one.
          const objectPath = new URL(url, 'http://proxy').pathname;
          const whole = await toUpstream('GET', objectPath, {}, Buffer.alloc(0));
          const kept = action === 'empty' ? Buffer.alloc(0) : whole.body.subarray(0, whole.body.length >> 1);
          // A content type, or the local S3 server fails on an empty body.
          const put = await toUpstream('PUT', objectPath, { 'content-type': 'application/x-ndjson' }, kept);
          if (put.status !== 200) throw new Error(`replacing ${objectPath}: HTTP ${put.status}`);
        }
        res.writeHead(answer.status, answer.headers);
        res.end(answer.body);
      } catch (error) {
        call.faultError = (error as Error).message;
        if (!res.headersSent) res.writeHead(502);
        res.end();
      }
    });
  }
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    calls,
    setRules(next) {
      rules = next.map((rule) => ({ rule, seen: 0, applied: 0 }));
      for (const { socket } of held.splice(0)) socket.destroy();
    },
    whenHolding() {
      const first = held[0];
      if (first) return Promise.resolve(first.call);
      return new Promise((resolve) => holdWaiters.push(resolve));
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
