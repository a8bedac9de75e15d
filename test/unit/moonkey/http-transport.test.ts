/**
 * The transport against a real HTTP server in this process: what it sends, what it hands back
 * (status, headers, body text, gzip), and the limits it enforces on one call (bytes, total time,
 * the run's abort).
 */
import { getEventListeners, once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, createServer as createTcpServer, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import { ApiRequestTimeoutError, ResponseTooLargeError } from '../../../lambda/core/errors';
import { createHttpTransport, type HttpTransport } from '../../../lambda/moonkey/http-transport';

const KEY = 'sk_live_transport_7';

let server: Server;
let baseUrl: string;
let handle: (req: IncomingMessage, res: ServerResponse) => void;
const received: { url: string; headers: IncomingMessage['headers'] }[] = [];
/** Responses left open by a test; ended after it so the server can close. */
const open: ServerResponse[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push({ url: req.url ?? '', headers: req.headers });
    handle(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const transports: HttpTransport[] = [];
const transport = (overrides: Partial<Parameters<typeof createHttpTransport>[0]> = {}) => {
  const t = createHttpTransport({
    apiUrl: baseUrl,
    apiKey: KEY,
    connections: 2,
    requestTimeoutMs: 5_000,
    requestTotalTimeoutMs: 30_000,
    maxResponseBytes: 1024 * 1024,
    ...overrides,
  });
  transports.push(t);
  return t;
};

beforeEach(() => {
  received.length = 0;
  handle = (_req, res) => res.end('{}');
});

afterEach(async () => {
  for (const res of open.splice(0)) res.destroy();
  await Promise.all(transports.splice(0).map((t) => t.close().catch(() => undefined)));
});

const live = () => new AbortController().signal;
/** The error a call fails with; a call that succeeds fails the test. */
const failureOf = (call: Promise<unknown>) =>
  call.then(
    () => {
      throw new Error('expected the call to fail');
    },
    (error: unknown) => error as Error,
  );
const waitFor = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('createHttpTransport: the request', () => {
  it('GETs the path under the base path with the bearer key, JSON and identity encoding', async () => {
    await transport({ apiUrl: `${baseUrl}/gateway//` }).get('/v1/x?user_id=a%20b', live());

    expect(received).toEqual([
      {
        url: '/gateway/v1/x?user_id=a%20b',
        headers: expect.objectContaining({
          authorization: `Bearer ${KEY}`,
          accept: 'application/json',
          'accept-encoding': 'identity',
        }),
      },
    ]);
  });
});

describe('createHttpTransport: the answer', () => {
  it('hands back the status, the headers the client reads, and the body as UTF-8', async () => {
    handle = (_req, res) => {
      res.writeHead(503, { 'retry-after': '7', location: '/elsewhere', 'content-type': 'text/plain' });
      res.end('dépassé');
    };

    expect(await transport().get('/', live())).toEqual({
      statusCode: 503,
      retryAfter: '7',
      location: '/elsewhere',
      contentEncoding: undefined,
      gzip: false,
      bytes: Buffer.byteLength('dépassé'),
      text: 'dépassé',
    });
  });

  it('takes the first of a repeated Location or Content-Encoding (identity: read as text), and hands back every Retry-After', async () => {
    handle = (_req, res) => {
      res.setHeader('location', ['/first', '/second']);
      res.setHeader('content-encoding', ['identity', 'gzip']);
      res.setHeader('retry-after', ['5', '6']);
      res.end('{}');
    };

    expect(await transport().get('/', live())).toMatchObject({
      location: '/first',
      contentEncoding: 'identity',
      retryAfter: ['5', '6'],
      // A declared encoding other than gzip leaves the body as text.
      gzip: false,
      text: '{}',
    });
  });

  it('joins a body sent in many chunks, a character split across two of them included', async () => {
    const text = `{"note":"${'é'.repeat(3000)}"}`;
    const bytes = Buffer.from(text);
    handle = (_req, res) => {
      res.writeHead(200);
      res.write(bytes.subarray(0, 11)); // inside the first é's two bytes
      setTimeout(() => res.end(bytes.subarray(11)), 20);
    };

    const response = await transport().get('/', live());

    expect(response.text).toBe(text);
    expect(response.bytes).toBe(bytes.length);
  });

  it('recognises gzip by its magic bytes without Content-Encoding, and by Content-Encoding alone', async () => {
    handle = (req, res) => {
      if (req.url === '/sniffed') res.end(gzipSync('{"sessions":[]}'));
      else {
        res.writeHead(200, { 'content-encoding': 'x-GZIP' });
        res.end('not really compressed');
      }
    };

    const sniffed = await transport().get('/sniffed', live());
    const declared = await transport().get('/declared', live());

    expect(sniffed).toMatchObject({ gzip: true, text: '', contentEncoding: undefined });
    expect(sniffed.bytes).toBe(gzipSync('{"sessions":[]}').length);
    expect(declared).toMatchObject({ gzip: true, text: '', contentEncoding: 'x-GZIP' });
  });

  it('does not take a body that only starts like gzip for gzip', async () => {
    handle = (req, res) =>
      res.end(Buffer.from(req.url === '/first' ? [0x1f, 0x41, 0x42] : [0x41, 0x8b, 0x42]));

    expect(await transport().get('/first', live())).toMatchObject({ gzip: false });
    expect(await transport().get('/second', live())).toMatchObject({ gzip: false });
  });

  it('reads an empty body as empty text', async () => {
    handle = (_req, res) => {
      res.writeHead(204);
      res.end();
    };

    expect(await transport().get('/', live())).toMatchObject({
      statusCode: 204,
      bytes: 0,
      text: '',
      gzip: false,
    });
  });
});

describe('createHttpTransport: the byte limit', () => {
  it('reads a body of exactly the limit', async () => {
    handle = (_req, res) => res.end('x'.repeat(100));

    expect((await transport({ maxResponseBytes: 100 }).get('/', live())).bytes).toBe(100);
  });

  it('fails a body one byte past the limit as it arrives, with the count it reached', async () => {
    handle = (_req, res) => {
      res.writeHead(200);
      res.write('x'.repeat(60));
      setTimeout(() => res.end('x'.repeat(41)), 20);
    };

    const error = await failureOf(transport({ maxResponseBytes: 100 }).get('/', live()));

    expect(error).toBeInstanceOf(ResponseTooLargeError);
    expect(error.message).toBe(
      'HTTP 200 response larger than EXPORT_MAX_RESPONSE_BYTES=100 (exceeded it after 101 bytes); reading stopped and the connection was closed',
    );
  });

  it('fails a declared Content-Length past the limit before any body, and one at the limit not at all', async () => {
    handle = (req, res) => {
      res.writeHead(200, { 'content-length': req.url === '/over' ? '101' : '100' });
      if (req.url === '/over') {
        res.flushHeaders();
        open.push(res);
      } else res.end('y'.repeat(100));
    };

    const error = await failureOf(transport({ maxResponseBytes: 100 }).get('/over', live()));
    const fits = await transport({ maxResponseBytes: 100 }).get('/fits', live());

    expect(error).toBeInstanceOf(ResponseTooLargeError);
    expect(error.message).toContain('(declares Content-Length: 101)');
    expect(fits.text).toBe('y'.repeat(100));
  });
});

describe('createHttpTransport: time', () => {
  it('fails an attempt that outlasts the total timeout, saying how much body had come, and closes its connection', async () => {
    let closed: Promise<unknown> | undefined;
    handle = (_req, res) => {
      res.writeHead(200);
      res.write('abc');
      closed = once(res, 'close');
      open.push(res);
    };

    // The idle timeout is far away: only the transport's own teardown can close the connection soon.
    const error = await failureOf(
      transport({ requestTotalTimeoutMs: 300, requestTimeoutMs: 120_000 }).get('/', live()),
    );

    expect(error).toBeInstanceOf(ApiRequestTimeoutError);
    expect(error.message).toBe(
      'the request took longer than EXPORT_REQUEST_TOTAL_TIMEOUT_MS=300 (3 body bytes received)',
    );
    await closed;
  });

  it("rejects with undici's own error when no header comes within the idle timeout", async () => {
    handle = (_req, res) => {
      open.push(res);
    };

    const error = await failureOf(transport({ requestTimeoutMs: 200 }).get('/', live()));

    expect((error as { code?: string }).code).toBe('UND_ERR_HEADERS_TIMEOUT');
  });

  it("rejects with undici's own error when the body stalls for the idle timeout", async () => {
    handle = (_req, res) => {
      res.writeHead(200);
      res.write('{"sessions":[');
      open.push(res);
    };

    const error = await failureOf(transport({ requestTimeoutMs: 200 }).get('/', live()));

    expect((error as { code?: string }).code).toBe('UND_ERR_BODY_TIMEOUT');
  });

  it('fails a connection that never completes its TLS handshake within the idle timeout', async () => {
    // Accepts TCP and never answers: the handshake, not the request, is what waits.
    const sockets: Socket[] = [];
    const silent = createTcpServer((socket) => sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    try {
      // The total timeout is well below undici's own 10 s connect timeout: the error says which fired.
      const error = await failureOf(
        transport({
          apiUrl: `https://127.0.0.1:${port}`,
          requestTimeoutMs: 200,
          requestTotalTimeoutMs: 8_000,
        }).get('/', live()),
      );

      expect((error as { code?: string }).code).toBe('UND_ERR_CONNECT_TIMEOUT');
    } finally {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    }
  });
});

describe('createHttpTransport: what a call holds', () => {
  const refTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

  it('does not keep the process alive with the total timeout of a call in flight', async () => {
    handle = (_req, res) => {
      open.push(res);
    };
    const run = new AbortController();
    const t = transport({ connections: 3 });
    const before = refTimers();

    const calls = [t.get('/a', run.signal), t.get('/b', run.signal), t.get('/c', run.signal)].map((p) =>
      p.catch((e: unknown) => e),
    );
    await waitFor(() => received.length === 3);

    expect(refTimers()).toBeLessThan(before + 3);
    run.abort(new Error('done'));
    await Promise.all(calls);
  });

  it('adds one abort listener to a run signal, however many of its calls are in flight', async () => {
    handle = (_req, res) => {
      open.push(res);
    };
    const run = new AbortController();
    const t = transport({ connections: 3 });

    const calls = [t.get('/a', run.signal), t.get('/b', run.signal), t.get('/c', run.signal)].map((p) =>
      p.catch((e: unknown) => e),
    );
    await waitFor(() => received.length === 3);

    expect(getEventListeners(run.signal, 'abort')).toHaveLength(1);
    run.abort(new Error('done'));
    expect(await Promise.all(calls)).toEqual([new Error('done'), new Error('done'), new Error('done')]);
  });

  it('keeps nothing of a settled call, its answer included, while its run signal lives on', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const run = new AbortController();
    const t = transport();
    // In a function of its own, so no frame of this test still refers to the call's promise.
    const settled = async () => {
      const call = t.get('/', run.signal);
      const ref = new WeakRef(call);
      await call;
      return ref;
    };

    const ref = await settled();
    // Two rounds: undici lets go of the handler a turn after the answer, and a WeakRef's target
    // survives the job that last touched it.
    for (const _ of [1, 2]) {
      await new Promise((resolve) => setTimeout(resolve, 10));
      gc();
    }

    // The run's signal is still live (and still in the transport's map): the call must not be.
    expect(run.signal.aborted).toBe(false);
    expect(ref.deref()).toBeUndefined();
  });
});

describe('createHttpTransport: the run abort', () => {
  it('rejects every call in flight on one signal with its reason, and frees their connections', async () => {
    handle = (_req, res) => {
      open.push(res);
    };
    const run = new AbortController();
    const reason = new Error('run aborted');
    const t = transport();

    const calls = [t.get('/a', run.signal), t.get('/b', run.signal)].map((p) => p.catch((e: unknown) => e));
    await waitFor(() => received.length === 2);
    run.abort(reason);

    expect(await Promise.all(calls)).toEqual([reason, reason]);
    handle = (_req, res) => res.end('after');
    expect((await t.get('/c', live())).text).toBe('after');
  });

  it('never sends a call still waiting for a connection once its signal aborts', async () => {
    handle = (_req, res) => {
      open.push(res);
    };
    const run = new AbortController();
    const reason = new Error('run aborted');
    const t = transport({ connections: 1 });

    const calls = [t.get('/first', run.signal), t.get('/queued', run.signal)].map((p) =>
      p.catch((e: unknown) => e),
    );
    await waitFor(() => received.length === 1);
    run.abort(reason);

    expect(await Promise.all(calls)).toEqual([reason, reason]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(received.map((r) => r.url)).toEqual(['/first']);
  });

  it('leaves calls on other signals alone', async () => {
    handle = (req, res) => {
      if (req.url === '/hang') open.push(res);
      else setTimeout(() => res.end('kept'), 50);
    };
    const doomed = new AbortController();
    const t = transport();

    const lost = t.get('/hang', doomed.signal).catch((e: unknown) => e);
    const kept = t.get('/kept', live());
    await waitFor(() => received.length === 2);
    doomed.abort(new Error('one run aborted'));

    expect(await lost).toEqual(new Error('one run aborted'));
    expect((await kept).text).toBe('kept');
  });
});
