/**
 * The shared facts: the helpers that build names from them, and that the job's own code uses them
 * (config defaults, the metrics it emits, the names it gives scheduled snapshots).
 */
import { parseConfig } from '../../../lambda/core/config';
import {
  compactUtc,
  DATA_FILE_SUFFIX,
  DEFAULT_API_URL,
  DEFAULT_CONCURRENCY,
  DEFAULT_EXPORT_PREFIX,
  DEFAULT_METRICS_NAMESPACE,
  DEFAULT_USER_ID_ATTRIBUTE,
  dataFileName,
  EARLIEST_SCHEDULED_TIME,
  FILE_INDEX_DIGITS,
  FILE_KINDS,
  FIRST_PARTITION_DATE,
  FUNCTION_TIMEOUT_MS,
  folderPrefix,
  MANIFEST_SUFFIX,
  MANIFESTS_FOLDER,
  MAX_SEGMENTS,
  METRIC_DIMENSIONS,
  METRICS,
  mostAutoSegments,
  PARTITION_KEY,
  partitionFolder,
  RUN_STATE_FOLDER,
  SEGMENT_DIGITS,
  SERVICE_NAME,
  SNAPSHOT_COMMITTED_EVENT,
  SNAPSHOT_EVENT_SOURCE,
  SNAPSHOT_FAILED_EVENT,
  STEP_DIGITS,
  scheduledSnapshotId,
  workStepName,
  writerId,
} from '../../../lambda/core/facts';
import type { RunMetrics } from '../../../lambda/core/observability';
import { planFromEvent, scheduledTimeProblem } from '../../../lambda/run/run-plan';
import { emfLinesOf } from '../../helpers/emf-lines';
import { SNAPSHOT_EVENT_SCHEMA } from '../../helpers/snapshot-event-schema';

describe('mostAutoSegments', () => {
  it('is one segment per call in flight, up to the 40 an inline Map runs at once', () => {
    expect(MAX_SEGMENTS).toBe(40);
    expect(mostAutoSegments(1)).toBe(1);
    expect(mostAutoSegments(DEFAULT_CONCURRENCY)).toBe(16);
    expect(mostAutoSegments(39)).toBe(39);
    expect(mostAutoSegments(40)).toBe(40);
    expect(mostAutoSegments(41)).toBe(40);
    expect(mostAutoSegments(2048)).toBe(40);
  });
});

describe('key layout', () => {
  it('puts each kind and the manifests in a folder of its own under the prefix, partitioned by dt', () => {
    expect(FILE_KINDS).toEqual([
      'sessions',
      'rejects',
      'failed-users',
      'pseudonymized/sessions',
      'pseudonymized/rejects',
    ]);
    expect(folderPrefix('p', 'pseudonymized/sessions')).toBe('p/pseudonymized/sessions/');
    expect(folderPrefix('p/q', 'failed-users')).toBe('p/q/failed-users/');
    expect(folderPrefix('p', 'manifests')).toBe('p/manifests/');
    expect(folderPrefix('p', 'runs')).toBe('p/runs/');
    expect(partitionFolder('2026-11-26')).toBe('dt=2026-11-26/');
  });

  it('pads segment, step and file index so keys list in the order they were written', () => {
    expect(writerId(2, 17, 'abc')).toBe('s002-00017-abc');
    expect(writerId(0, 0, 'local')).toBe('s000-00000-local');
    expect(writerId(39, 99_999, 'x')).toBe('s039-99999-x');
    expect(dataFileName('s002-00017-abc', 3)).toBe('s002-00017-abc-00003.ndjson.gz');
    expect(dataFileName('w', 12_345)).toBe('w-12345.ndjson.gz');
    expect(DATA_FILE_SUFFIX).toBe('.ndjson.gz');
    expect(workStepName(2, 17, 'abc')).toBe('002/00017-abc.json');
  });

  it('gives the step the same width in the writer id and in the step key', () => {
    const step = 4321;
    const fromWriter = /^s\d+-(\d+)-/.exec(writerId(1, step, 'a'))?.[1];
    const fromStepKey = /\/(\d+)-/.exec(workStepName(1, step, 'a'))?.[1];
    expect(fromWriter).toBe('04321');
    expect(fromStepKey).toBe(fromWriter);
  });
});

describe('scheduled snapshot naming', () => {
  it('is scheduled- and the slot in UTC without separators or milliseconds', () => {
    expect(compactUtc(new Date('2026-11-27T02:00:00.000Z'))).toBe('20261127T020000Z');
    expect(compactUtc(new Date('2026-11-27T02:00:00.999Z'))).toBe('20261127T020000Z');
    expect(scheduledSnapshotId(new Date('2026-11-27T03:00:00+01:00'))).toBe('scheduled-20261127T020000Z');
  });

  it('is the snapshot id the job gives a scheduled run', () => {
    const now = new Date('2026-11-27T02:00:05Z');
    const plan = planFromEvent(
      { 'detail-type': 'Scheduled Event', source: 'aws.scheduler', time: '2026-11-27T02:00:00Z' },
      now,
      'r',
    );
    expect(plan.snapshotId).toBe(scheduledSnapshotId(new Date('2026-11-27T02:00:00Z')));
  });
});

describe('the first partition date', () => {
  it('is midnight UTC of the first day the tables project, and the earliest slot the job takes', () => {
    expect(FIRST_PARTITION_DATE).toBe('2024-01-01');
    expect(EARLIEST_SCHEDULED_TIME).toBe('2024-01-01T00:00:00Z');
    const now = new Date('2026-11-27T00:00:00Z');
    expect(scheduledTimeProblem(EARLIEST_SCHEDULED_TIME, now)).toBeUndefined();
    expect(scheduledTimeProblem('2023-12-31T23:59:59Z', now)).toMatch(
      /must not be before 2024-01-01T00:00:00Z/,
    );
  });
});

describe('deployed defaults', () => {
  it('keep the values deployed stacks and their data already use', () => {
    expect(DEFAULT_CONCURRENCY).toBe(16);
    expect(DEFAULT_EXPORT_PREFIX).toBe('moonkey');
    expect(DEFAULT_USER_ID_ATTRIBUTE).toBe('user_id');
    expect(DEFAULT_API_URL).toBe('https://api.moonkey.fun');
    expect(FUNCTION_TIMEOUT_MS).toBe(900_000);
    expect([MANIFESTS_FOLDER, RUN_STATE_FOLDER, PARTITION_KEY, MANIFEST_SUFFIX]).toEqual([
      'manifests',
      'runs',
      'dt',
      '.json',
    ]);
    expect([SEGMENT_DIGITS, STEP_DIGITS, FILE_INDEX_DIGITS]).toEqual([3, 5, 5]);
  });
});

describe('config defaults', () => {
  it('are the shared defaults the stack also passes', () => {
    const config = parseConfig({
      USERS_TABLE_NAME: 'users',
      EXPORT_BUCKET_NAME: 'bucket',
      MOONKEY_API_KEY: 'k',
    });
    expect(config).toMatchObject({
      concurrency: DEFAULT_CONCURRENCY,
      prefix: DEFAULT_EXPORT_PREFIX,
      userIdAttribute: DEFAULT_USER_ID_ATTRIBUTE,
      apiUrl: DEFAULT_API_URL,
      metricsNamespace: DEFAULT_METRICS_NAMESPACE,
    });
  });
});

describe('METRICS', () => {
  const RUN: RunMetrics = {
    usersProcessed: 1,
    usersFailed: 2,
    usersNotFound: 3,
    sessionsExported: 4,
    itemsRejected: 5,
    retries: 6,
    durationSeconds: 7,
    committed: true,
    trigger: 'scheduled',
  };

  /** Every metric name in the EMF lines the job's MetricsSink prints for one run. */
  function emittedNames(): string[] {
    return emfLinesOf(RUN).flatMap((line) =>
      line._aws.CloudWatchMetrics.flatMap((m) => m.Metrics.map((x) => x.Name)),
    );
  }

  it('keeps the names CloudWatch already holds: renaming one orphans its history and its alarms', () => {
    expect(METRICS).toEqual({
      usersProcessed: 'UsersProcessed',
      usersFailed: 'UsersFailed',
      usersNotFound: 'UsersNotFound',
      sessionsExported: 'SessionsExported',
      itemsRejected: 'ItemsRejected',
      retries: 'Retries',
      runDuration: 'RunDuration',
      snapshotCommitted: 'SnapshotCommitted',
    });
    expect(METRIC_DIMENSIONS).toEqual({ service: 'service', trigger: 'trigger' });
    expect(SERVICE_NAME).toBe('moonkey-session-export');
    expect(DEFAULT_METRICS_NAMESPACE).toBe('MoonKeySessionExport');
  });

  it('names exactly the metrics the job emits, each once per run', () => {
    const emitted = emittedNames();
    expect([...emitted].sort()).toEqual(Object.values(METRICS).sort());
  });
});

describe('completion events', () => {
  it('are named as the shipped event schema tells subscribers to match them', () => {
    const properties = SNAPSHOT_EVENT_SCHEMA.properties as Record<string, unknown>;

    expect(properties.source).toEqual({ const: SNAPSHOT_EVENT_SOURCE });
    expect(properties['detail-type']).toEqual({ enum: [SNAPSHOT_COMMITTED_EVENT, SNAPSHOT_FAILED_EVENT] });
  });
});
