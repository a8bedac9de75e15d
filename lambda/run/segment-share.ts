import { ConfigError } from '../core/errors';

/**
 * EXPORT_CONCURRENCY and EXPORT_MAX_RPS limit the whole run, but each segment works in its own
 * invocations with nothing shared, so each takes a fixed share of both.
 *
 * Calls in flight are whole: every segment gets floor(c/s), and the first c mod s segments one
 * more, so the shares add up to exactly c. A segment needs at least one call, so a run cannot
 * keep the limit with more segments than EXPORT_CONCURRENCY: config refuses such a setting, and
 * `auto` never chooses it; a run planned before EXPORT_CONCURRENCY was lowered fails here.
 */
export function concurrencyShare(concurrency: number, segment: number, totalSegments: number): number {
  if (totalSegments > concurrency) {
    const issue = `EXPORT_SCAN_SEGMENTS: the run has ${totalSegments} segments but EXPORT_CONCURRENCY is ${concurrency}; every segment needs one call in flight and EXPORT_CONCURRENCY limits the whole run, so segments may not exceed it (raise EXPORT_CONCURRENCY or lower EXPORT_SCAN_SEGMENTS, then rerun)`;
    throw new ConfigError(`Invalid configuration: ${issue}`, [issue]);
  }
  return Math.floor(concurrency / totalSegments) + (segment < concurrency % totalSegments ? 1 : 0);
}

/** Requests per second are divisible: the segments' shares add up to the run's limit. */
export function rateShare(maxRps: number, totalSegments: number): number {
  return maxRps / totalSegments;
}
