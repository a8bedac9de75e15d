/**
 * `Retry-After` in milliseconds from `nowMs`: either delta-seconds or an HTTP date (RFC 9110
 * §10.2.3), never negative; undefined when missing or unreadable (no floor on the backoff).
 */
export function parseRetryAfter(value: string | string[] | undefined, nowMs: number): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined || raw.trim() === '') return undefined;
  if (/^\d+$/.test(raw.trim())) return Number(raw.trim()) * 1000;
  const at = Date.parse(raw);
  return Number.isNaN(at) ? undefined : Math.max(0, at - nowMs);
}
