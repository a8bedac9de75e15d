/**
 * `Retry-After` in milliseconds from `nowMs`: either delta-seconds or an HTTP date (RFC 9110
 * §10.2.3), never negative; undefined when missing or unreadable (no floor on the backoff).
 * An empty or blank value needs no case of its own: neither the digits nor Date.parse read it.
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = (Array.isArray(value) ? value[0] : value)?.trim();
  if (raw === undefined) return undefined;
  if (/^\d+$/.test(raw)) return Number(raw) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
