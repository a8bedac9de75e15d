/**
 * The fake MoonKey API in its own process, so a benchmark measures the job's CPU and memory
 * without the server's. Settings come from the environment; `/_fake/configure` and
 * `/_fake/stats` change and read it at run time.
 *
 *   FAKE_API_PORT (required), FAKE_API_KEY, FAKE_API_BASE_TIME, FAKE_API_LATENCY_MS,
 *   FAKE_API_RATE_LIMIT_RPS, FAKE_API_TRACK_USERS (default false here: see FakeApiSettings)
 */
import { startFakeMoonKeyApi } from './fake-moonkey-api';

const env = process.env;
const number = (name: string): number | undefined => {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const value = Number(raw);
  if (!Number.isFinite(value)) throw new Error(`${name} must be a number, got "${raw}"`);
  return value;
};

async function main(): Promise<void> {
  const port = number('FAKE_API_PORT');
  if (port === undefined) throw new Error('FAKE_API_PORT is required');
  const api = await startFakeMoonKeyApi(
    {
      ...(env.FAKE_API_KEY ? { apiKey: env.FAKE_API_KEY } : {}),
      ...(number('FAKE_API_BASE_TIME') === undefined ? {} : { baseTime: number('FAKE_API_BASE_TIME') }),
      latencyMs: number('FAKE_API_LATENCY_MS') ?? 0,
      rateLimitRps: number('FAKE_API_RATE_LIMIT_RPS'),
      trackUsers: env.FAKE_API_TRACK_USERS === 'true',
    },
    port,
  );
  console.log(`fake MoonKey API listening on ${api.url}`);
  const stop = () => {
    void api.close().then(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
