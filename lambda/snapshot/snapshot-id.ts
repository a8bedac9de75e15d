import { randomBytes } from 'node:crypto';

/** `dt=YYYY-MM-DD` of a snapshot: the UTC date of its snapshot time. */
export function partitionDate(snapshotAt: number): string {
  return new Date(snapshotAt * 1000).toISOString().slice(0, 10);
}

const RUN_ID = /^r\d{8}T\d{9}Z-[a-z0-9]{6}$/;

/**
 * One run of a snapshot slot: `r<UTC time with ms>-<6 chars>`. Run ids sort by start time as
 * plain strings, which is what readers use to pick the newest committed run of a slot (the
 * view takes `max(run_id)`), so an older run that commits late never hides a newer one. The
 * suffix tells apart runs started in the same millisecond; a caller that must get the same id
 * on a retry (a Step Functions Plan) passes a suffix derived from its execution.
 */
export function newRunId(startedAt: Date, suffix?: string): string {
  const tail = (suffix ?? randomBytes(6).toString('hex'))
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '')
    .padEnd(6, '0')
    .slice(0, 6);
  const time = startedAt.toISOString().replace(/[-:]/g, '').replace('.', '');
  return `r${time}-${tail}`;
}

export function isRunId(value: string): boolean {
  return RUN_ID.test(value);
}
