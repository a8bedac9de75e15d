/**
 * The local servers hold no secrets but accept any credentials and any request: they must not be
 * reachable from the network the machine sits on. Checked in the kernel's socket tables, so a
 * server that says 127.0.0.1 but listens on 0.0.0.0 (fauxqs's `startFauxqs` does, 2.4.1 as 1.9.2) fails.
 */
import { createServer, type Server } from 'node:net';
import { type LocalStack, startLocalStack } from '../../local/local-stack';
import { isLoopback, listeningAddresses } from '../helpers/listening-addresses';

const portOf = (url: string) => Number(new URL(url).port);

describe('the local stack listens on loopback only', () => {
  let stack: LocalStack;

  beforeAll(async () => {
    stack = await startLocalStack();
  }, 120_000);

  afterAll(async () => {
    await stack?.stop();
  });

  it.each([
    ['the S3 server (fauxqs)', () => stack.s3.endpoint],
    ['DynamoDB Local', () => stack.dynamodb.endpoint],
    ['the fake MoonKey API', () => stack.api.url],
  ])('%s', (_name, endpoint) => {
    const addresses = listeningAddresses(portOf(endpoint()));
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.filter((a) => !isLoopback(a))).toEqual([]);
  });
});

describe('listeningAddresses (the check above can fail)', () => {
  const listen = (host: string) =>
    new Promise<Server>((resolve) => {
      const server = createServer();
      server.listen(0, host, () => resolve(server));
    });
  const close = (server: Server) => new Promise((resolve) => server.close(resolve));

  it.each([
    ['0.0.0.0', '0.0.0.0'],
    ['::', '::'],
    ['127.0.0.1', '127.0.0.1'],
  ])('reports a server bound to %s as %s', async (host, expected) => {
    const server = await listen(host);
    try {
      const { port } = server.address() as { port: number };
      expect(listeningAddresses(port)).toEqual([expected]);
      expect(isLoopback(expected)).toBe(expected === '127.0.0.1');
    } finally {
      await close(server);
    }
  });
});
