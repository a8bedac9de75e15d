import { z } from 'zod';
import { InvalidEventError } from '../core/errors';
import { compactUtc, EARLIEST_SCHEDULED_TIME, scheduledSnapshotId } from '../core/facts';
import { newRunId } from '../snapshot/snapshot-id';

/**
 * A scheduled invocation: the "Scheduled Event" an EventBridge rule sends, or the same shape the
 * stack's EventBridge Scheduler target sends (`source: aws.scheduler`, `time` from
 * `<aws.scheduler.scheduled-time>`). `moonkey.cli` is `npm run export` acting as the scheduler.
 */
export const scheduledEventSchema = z.looseObject({
  'detail-type': z.literal('Scheduled Event'),
  source: z.enum(['aws.events', 'aws.scheduler', 'moonkey.cli']),
  time: z.iso.datetime({ offset: true, error: 'must be an ISO-8601 timestamp' }),
});

/**
 * The range a scheduled slot must fall in. The Glue tables project `dt` partitions from
 * FIRST_PARTITION_DATE (core/facts.ts) to NOW, so a snapshot outside it is written where Athena
 * never looks. The upper bound allows one day ahead of this clock: a scheduler's
 * clock may run ahead of ours, and a slot near midnight may belong to tomorrow's UTC date (it
 * becomes visible once that date arrives); anything later is a typo like 2062 or 9999.
 */
export const MAX_SCHEDULED_AHEAD_MS = 24 * 60 * 60 * 1000;

/** Why a scheduled time is refused, or undefined when it is a valid ISO-8601 time in range. */
export function scheduledTimeProblem(time: string, now: Date): string | undefined {
  if (!scheduledEventSchema.shape.time.safeParse(time).success) {
    return `must be an ISO-8601 timestamp with a time zone (like 2026-11-26T02:00:00Z), got "${time}"`;
  }
  const at = Date.parse(time);
  if (at < Date.parse(EARLIEST_SCHEDULED_TIME)) {
    return `must not be before ${EARLIEST_SCHEDULED_TIME} (the first partition the Athena tables project), got "${time}"`;
  }
  if (at > now.getTime() + MAX_SCHEDULED_AHEAD_MS) {
    return `must not be more than one day after now (${now.toISOString()}), got "${time}"`;
  }
  return undefined;
}

/** A manual audit: `{ "reason": "...", "userIds": [...], "dryRun": false }`. Unknown keys are refused. */
export const auditRequestSchema = z.strictObject({
  reason: z
    .string({ error: 'is required: say why this audit runs' })
    .trim()
    .min(3, { error: 'must be at least 3 characters' })
    .max(1000, { error: 'must be at most 1000 characters' }),
  userIds: z
    .array(z.string().min(1, { error: 'must not be empty' }).max(1024), {
      error: 'must be a list of user ids',
    })
    .min(1, { error: 'must name at least one user when given' })
    .max(10_000, { error: 'must name at most 10000 users (omit it to export everyone)' })
    .optional(),
  dryRun: z.boolean({ error: 'must be true or false' }).default(false),
});

export type UserSource = { kind: 'scan' } | { kind: 'list'; userIds: readonly string[] };

/** Everything a run needs to know about *what* to export; *how* comes from Config. */
export interface RunPlan {
  readonly snapshotId: string;
  /** This run of the slot (snapshot-id.ts): what makes its files its own, and orders it among reruns. */
  readonly runId: string;
  /** ISO time the run started. */
  readonly startedAt: string;
  /** Epoch seconds; also decides the `dt=` partition (UTC date). */
  readonly snapshotAt: number;
  readonly trigger: 'scheduled' | 'audit';
  readonly reason: string | undefined;
  readonly users: UserSource;
  readonly dryRun: boolean;
}

export interface PlanOptions {
  /**
   * Makes the run id repeatable: a Step Functions Plan that is retried must name the same run,
   * so it passes something derived from its execution. Random when omitted.
   */
  readonly runIdSuffix?: string;
}

/**
 * Turns an invocation payload into a plan, or throws InvalidEventError listing what is wrong
 * with it as each kind of event. A scheduled slot's id depends only on the scheduled time, so a
 * duplicate delivery or a retry rewrites the same snapshot; an audit gets an id of its own.
 */
export function planFromEvent(
  event: unknown,
  now: Date,
  invocationId: string,
  options: PlanOptions = {},
): RunPlan {
  const run = { runId: newRunId(now, options.runIdSuffix), startedAt: now.toISOString() };
  const scheduled = scheduledEventSchema.safeParse(event);
  if (scheduled.success) {
    const problem = scheduledTimeProblem(scheduled.data.time, now);
    if (problem !== undefined) {
      throw new InvalidEventError(`Rejected the scheduled event: time ${problem}`, [`time: ${problem}`]);
    }
    const at = new Date(scheduled.data.time);
    return {
      snapshotId: scheduledSnapshotId(at),
      ...run,
      snapshotAt: Math.floor(at.getTime() / 1000),
      trigger: 'scheduled',
      reason: undefined,
      users: { kind: 'scan' },
      dryRun: false,
    };
  }
  const looksScheduled = typeof event === 'object' && event !== null && 'detail-type' in event;
  const audit = auditRequestSchema.safeParse(event);
  if (audit.success) {
    // The end of the invocation id: unique in a Lambda request id and in an execution name alike.
    const suffix =
      invocationId
        .replace(/[^A-Za-z0-9]/g, '')
        .slice(-8)
        .toLowerCase() || 'manual';
    return {
      snapshotId: `audit-${compactUtc(now)}-${suffix}`,
      ...run,
      snapshotAt: Math.floor(now.getTime() / 1000),
      trigger: 'audit',
      reason: audit.data.reason,
      users: audit.data.userIds
        ? { kind: 'list', userIds: [...new Set(audit.data.userIds)] }
        : { kind: 'scan' },
      dryRun: audit.data.dryRun,
    };
  }
  const failed = looksScheduled ? scheduled.error : audit.error;
  const issues = failed.issues.map((i) => `${i.path.length ? i.path.join('.') : 'event'}: ${i.message}`);
  const kind = looksScheduled ? 'a scheduled event' : 'an audit request';
  throw new InvalidEventError(
    `Rejected the invocation payload: it is neither a scheduled event nor an audit request ({"reason": "...", "userIds"?: [...], "dryRun"?: false}). As ${kind}: ${issues.join('; ')}`,
    issues,
  );
}
