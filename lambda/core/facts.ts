/**
 * The facts the job (lambda/), the stack (infra/) and the local tools (local/, scripts/) share,
 * each stated once. It imports nothing: the stack, the Lambda bundle and the scripts all load it,
 * and none of them should pay a dependency (or a different version of one) for a constant.
 *
 * A fact here is something two of those places must agree on, or the deployed job and what the
 * stack built around it drift apart: a default the stack passes as an environment variable, a
 * metric an alarm reads, a key the Glue tables or the local reader expect.
 */

// ---- Defaults and limits --------------------------------------------------------------------

/**
 * Segments an inline Map runs at once, and so the most segments a run may have: more would queue
 * behind the first 40 and leave their share of the run's rate unused.
 */
export const MAX_SEGMENTS = 40;

/** `EXPORT_CONCURRENCY` / the `concurrency` prop: calls in flight for the whole run. */
export const DEFAULT_CONCURRENCY = 16;

/**
 * The most segments `EXPORT_SCAN_SEGMENTS=auto` may choose: one per call the run may have in
 * flight (every segment needs at least one), and never more than the Map runs at once.
 */
export function mostAutoSegments(concurrency: number): number {
  return Math.min(MAX_SEGMENTS, concurrency);
}

/** `EXPORT_PREFIX` / `exportPrefix`: the key prefix of everything the job writes. */
export const DEFAULT_EXPORT_PREFIX = 'moonkey';

/** `USER_ID_ATTRIBUTE` / `userIdAttribute`: the users table's attribute holding the id. */
export const DEFAULT_USER_ID_ATTRIBUTE = 'user_id';

/** `MOONKEY_API_URL` / `apiUrl`. */
export const DEFAULT_API_URL = 'https://api.moonkey.fun';

/** `METRICS_NAMESPACE`: where the job's EMF metrics land and the alarms look for them. */
export const DEFAULT_METRICS_NAMESPACE = 'MoonKeySessionExport';

/**
 * The export function's timeout: Lambda's maximum. The state machine's task timeouts and the
 * local runner's default phase budget are derived from it.
 */
export const FUNCTION_TIMEOUT_MS = 15 * 60 * 1000;

// ---- Metrics --------------------------------------------------------------------------------

/** Powertools' `serviceName`, which it also puts on every metric as the `service` dimension. */
export const SERVICE_NAME = 'moonkey-session-export';

/**
 * Every metric the job emits (lambda/core/observability.ts), once per run. Alarms and dashboards
 * name metrics only through this object, so they can only name metrics the job emits.
 */
export const METRICS = {
  usersProcessed: 'UsersProcessed',
  usersFailed: 'UsersFailed',
  /** Users MoonKey answered 404 user_not_found for: deleted since the scan, not failures. */
  usersNotFound: 'UsersNotFound',
  sessionsExported: 'SessionsExported',
  itemsRejected: 'ItemsRejected',
  retries: 'Retries',
  runDuration: 'RunDuration',
  /** 1 per run that committed its snapshot, 0 per run that did not; the staleness alarm reads it. */
  snapshotCommitted: 'SnapshotCommitted',
} as const;

export type MetricName = (typeof METRICS)[keyof typeof METRICS];

/**
 * Metrics the export state machine puts itself (a PutMetricData state, with the `service`
 * dimension only), not the job: so they are counted even when the function is what fails.
 */
export const STATE_MACHINE_METRICS = {
  /** 1 per completion event that could not be published after its retries; the snapshot stands. */
  completionEventUnpublished: 'CompletionEventUnpublished',
} as const;

export type StateMachineMetricName = (typeof STATE_MACHINE_METRICS)[keyof typeof STATE_MACHINE_METRICS];

// ---- Completion events ------------------------------------------------------------------------

/** `source` of the completion events the state machine puts on EventBridge. */
export const SNAPSHOT_EVENT_SOURCE = 'moonkey.session-export';
/** `detail-type` of the event for a run whose snapshot committed. */
export const SNAPSHOT_COMMITTED_EVENT = 'Snapshot Committed';
/** `detail-type` of the event for a run that failed and was aborted. */
export const SNAPSHOT_FAILED_EVENT = 'Snapshot Failed';

/** The dimensions the job's metrics carry. */
export const METRIC_DIMENSIONS = {
  /** On every metric: SERVICE_NAME. */
  service: 'service',
  /**
   * On `SnapshotCommitted` only: `scheduled` or `audit`. The staleness alarm watches scheduled
   * runs only, so a daily audit cannot keep it green while the schedule is dead.
   */
  trigger: 'trigger',
} as const;

// ---- Key layout and snapshot naming ---------------------------------------------------------

/** The kinds of file a run writes, each under `<prefix>/<kind>/`; only `sessions` is read by the Athena table. */
/**
 * The kinds of file a run writes; `sessions` and `pseudonymized/sessions` are read by the Athena
 * tables. The pseudonymized copy lives under its own `pseudonymized/` prefix, so access to it is
 * granted apart from the raw copy's. Failed-users files hold no session data and serve both.
 */
export const FILE_KINDS = [
  'sessions',
  'rejects',
  'failed-users',
  'pseudonymized/sessions',
  'pseudonymized/rejects',
] as const;
export type FileKind = (typeof FILE_KINDS)[number];

/** Folders under the prefix besides the file kinds: the commit points, and run state outside every table. */
export const MANIFESTS_FOLDER = 'manifests';
export const RUN_STATE_FOLDER = 'runs';

/** The Hive-style partition column of every folder above: `<folder>/dt=YYYY-MM-DD/`. */
export const PARTITION_KEY = 'dt';

export const DATA_FILE_SUFFIX = '.ndjson.gz';
export const MANIFEST_SUFFIX = '.json';

/** `<prefix>/<folder>/`: a Glue table's location, and what the local reader copies and globs. */
export function folderPrefix(
  prefix: string,
  folder: FileKind | typeof MANIFESTS_FOLDER | typeof RUN_STATE_FOLDER,
) {
  return `${prefix}/${folder}/`;
}

/** `dt=<date>/`: one partition's folder. */
export function partitionFolder(date: string): string {
  return `${PARTITION_KEY}=${date}/`;
}

/**
 * Widths of the numbers in a writer id (`s<segment>-<step>-<invocation>`) and in a data file's
 * index, zero-padded so keys list in the order they were written. A step is one Work invocation;
 * Step Functions' 25,000-event history limit keeps an execution far below 100,000 of them.
 */
export const SEGMENT_DIGITS = 3;
export const STEP_DIGITS = 5;
export const FILE_INDEX_DIGITS = 5;

const padded = (value: number, digits: number) => String(value).padStart(digits, '0');

/** `s002-00017-abc`: which Work wrote a file (segments run at once, steps one after another, a retried step in a new invocation). */
export function writerId(segment: number, step: number, invocation: string): string {
  return `s${padded(segment, SEGMENT_DIGITS)}-${padded(step, STEP_DIGITS)}-${invocation}`;
}

/** `<writer>-00003.ndjson.gz`: the end of a data file's key. */
export function dataFileName(writer: string, index: number): string {
  return `${writer}-${padded(index, FILE_INDEX_DIGITS)}${DATA_FILE_SUFFIX}`;
}

/** `<segment>/<step>-<invocation>.json`: a Work step's result under the run's `work/` folder. */
export function workStepName(segment: number, step: number, invocation: string): string {
  return `${padded(segment, SEGMENT_DIGITS)}/${padded(step, STEP_DIGITS)}-${invocation}.json`;
}

/**
 * A scheduled run's snapshot id, and the name the scheduled-run launcher gives its execution:
 * `scheduled-` and the slot's UTC time without separators (execution names may not hold ':').
 */
export const SCHEDULED_PREFIX = 'scheduled-';

/** `2026-11-27T02:00:00.000Z` -> `20261127T020000Z`. */
export function compactUtc(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d{3}Z$/, 'Z')
    .replace(/[-:]/g, '');
}

/** `scheduled-20261127T020000Z` for the slot at 2026-11-27T02:00:00Z. */
export function scheduledSnapshotId(slot: Date): string {
  return `${SCHEDULED_PREFIX}${compactUtc(slot)}`;
}

// ---- The first partition date ---------------------------------------------------------------

/**
 * The first `dt` partition the Glue tables project (their range is this date to NOW), and so the
 * earliest slot a scheduled event may name: a snapshot before it would be written where Athena
 * never looks. The stack's `firstPartitionDate` defaults to it and may not be later.
 */
export const FIRST_PARTITION_DATE = '2024-01-01';

/** Midnight UTC of FIRST_PARTITION_DATE: the earliest scheduled time the job accepts. */
export const EARLIEST_SCHEDULED_TIME = `${FIRST_PARTITION_DATE}T00:00:00Z`;
