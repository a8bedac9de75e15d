import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface ThrottlingProxy {
  readonly url: string;
  /** Requests answered with ProvisionedThroughputExceededException, and passed through. */
  readonly stats: { throttled: number; passed: number };
  close(): Promise<void>;
}

/**
 * An HTTP proxy in front of DynamoDB Local that answers every request with DynamoDB's throttling
 * error for `throttleMs` from the first request it sees, then passes requests through unchanged.
 * DynamoDB Local never throttles, so this is how a long throttle reaches the real SDK.
 */
export async function startThrottlingProxy(upstream: string, throttleMs: number): Promise<ThrottlingProxy> {
  const target = new URL(upstream);
  const stats = { throttled: 0, passed: 0 };
  let throttleUntil: number | undefined;
  const server: Server = createServer((req, res) => {
    throttleUntil ??= Date.now() + throttleMs;
    if (Date.now() < throttleUntil) {
      stats.throttled++;
      req.resume();
      const body = JSON.stringify({
        __type: 'com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException',
        message: 'The level of configured provisioned throughput for the table was exceeded.',
      });
      res.writeHead(400, {
        'content-type': 'application/x-amz-json-1.0',
        'content-length': Buffer.byteLength(body),
        'x-amzn-requestid': `throttled-${stats.throttled}`,
      });
      res.end(body);
      return;
    }
    stats.passed++;
    const forward = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
