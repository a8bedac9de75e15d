import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One UploadPart as it crossed the wire. */
export interface RecordedPart {
  /** The object key (path-style URL without the bucket). */
  readonly key: string;
  readonly partNumber: number;
  /** Body bytes actually sent. */
  readonly bytes: number;
}

export interface S3RecordingProxy {
  readonly endpoint: string;
  readonly parts: RecordedPart[];
  /**
   * Answers matching requests itself with an S3 `AccessDenied` (which the SDK does not retry)
   * instead of passing them on: how a test makes S3 fail one kind of call.
   */
  refuse: ((method: string, url: URL) => boolean) | undefined;
  close(): Promise<void>;
}

/**
 * A pass-through HTTP proxy in front of the S3 server that records every UploadPart's size. The
 * S3 emulator forgets part boundaries once an upload completes, so a test that asserts part
 * sizes reads them here, as S3 would have received them.
 */
export async function startS3RecordingProxy(target: string, bucket: string): Promise<S3RecordingProxy> {
  const upstream = new URL(target);
  const parts: RecordedPart[] = [];
  const server: Server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy');
    if (proxy.refuse?.(req.method ?? 'GET', url)) {
      req.resume();
      req.on('end', () => {
        res.writeHead(403, { 'content-type': 'application/xml' });
        res.end(
          '<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>Access Denied by the test</Message></Error>',
        );
      });
      return;
    }
    const partNumber = url.searchParams.get('partNumber');
    let bytes = 0;
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: { ...req.headers, host: upstream.host },
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', (error) => res.destroy(error));
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    req.on('end', () => {
      if (req.method === 'PUT' && partNumber !== null && url.searchParams.has('uploadId')) {
        const key = decodeURIComponent(url.pathname.slice(`/${bucket}/`.length));
        parts.push({ key, partNumber: Number(partNumber), bytes });
      }
    });
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const proxy: S3RecordingProxy = {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    parts,
    refuse: undefined,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
  return proxy;
}
