import { METRICS, SERVICE_NAME } from '../../../lambda/core/facts';
import {
  createMetricsSink,
  noMetrics,
  type RunEnd,
  type RunMetrics,
  reportRunEnd,
} from '../../../lambda/core/observability';
import { captureLogger } from '../../helpers/capture-logger';
import { type EmfLine, emfLinesOf } from '../../helpers/emf-lines';

const RUN: RunMetrics = {
  usersProcessed: 10,
  usersFailed: 0,
  usersNotFound: 3,
  sessionsExported: 42,
  itemsRejected: 0,
  retries: 1,
  durationSeconds: 12.5,
  committed: true,
  trigger: 'scheduled',
};

const metricNames = (line: EmfLine) =>
  line._aws.CloudWatchMetrics.flatMap((m) => m.Metrics.map((x) => x.Name));
const committedLine = (lines: EmfLine[]) =>
  lines.filter((l) => metricNames(l).includes(METRICS.snapshotCommitted));

describe('createMetricsSink', () => {
  it('emits SnapshotCommitted with the trigger dimension of a scheduled run', () => {
    // Act
    const lines = emfLinesOf(RUN);
    // Assess
    const [committed, ...more] = committedLine(lines);
    expect(more).toEqual([]);
    expect(committed?._aws.CloudWatchMetrics).toEqual([
      expect.objectContaining({
        Namespace: 'TestNamespace',
        Dimensions: [expect.arrayContaining(['service', 'trigger'])],
      }),
    ]);
    expect(committed).toMatchObject({ service: SERVICE_NAME, trigger: 'scheduled', SnapshotCommitted: 1 });
  });

  it('emits an audit run under trigger=audit, so it cannot stand in for a scheduled one', () => {
    const [committed] = committedLine(emfLinesOf({ ...RUN, trigger: 'audit' }));
    expect(committed).toMatchObject({ trigger: 'audit', SnapshotCommitted: 1 });
  });

  it('counts a run that did not commit as 0', () => {
    const [committed] = committedLine(emfLinesOf({ ...RUN, committed: false }));
    expect(committed).toMatchObject({ trigger: 'scheduled', SnapshotCommitted: 0 });
  });

  it('keeps the run counts on the service dimension alone', () => {
    const counts = emfLinesOf(RUN).filter((l) => metricNames(l).includes('UsersProcessed'));
    expect(counts).toHaveLength(1);
    expect(counts[0]?._aws.CloudWatchMetrics[0]?.Dimensions).toEqual([['service']]);
    expect(counts[0]).toMatchObject({
      UsersProcessed: 10,
      UsersFailed: 0,
      UsersNotFound: 3,
      SessionsExported: 42,
      ItemsRejected: 0,
      Retries: 1,
      RunDuration: 12.5,
    });
    expect(metricNames(counts[0] as EmfLine)).toContain('UsersNotFound');
    expect(counts[0]).not.toHaveProperty('trigger');
  });
});

describe('reportRunEnd', () => {
  const END: RunEnd = {
    snapshot_id: 'scheduled-20261201T020000Z',
    run_id: 'r20261201T020001000Z-abcdef',
    trigger: 'scheduled',
    status: 'committed',
    error: null,
    duration_ms: 12_500,
    counts: {
      users_processed: 10,
      users_failed: 0,
      users_not_found: 3,
      sessions_exported: 42,
      items_rejected: 0,
      retries: 1,
    },
    files: { sessions: [{}, {}] },
  };

  it('puts one metrics record per run, its duration in seconds', () => {
    const logger = captureLogger();
    const seen: RunMetrics[] = [];

    reportRunEnd(logger, (m) => seen.push(m), END, 'p/manifests/m.json');

    expect(seen).toEqual([{ ...RUN, durationSeconds: 12.5 }]);

    reportRunEnd(logger, (m) => seen.push(m), { ...END, status: 'failed' }, undefined);
    expect(seen[1]).toMatchObject({ committed: false });
  });

  it('logs a committed run at INFO with what it wrote, and a failed one at ERROR with why', () => {
    const logger = captureLogger();
    const error = { step: 'work', type: 'ApiAuthError', message: 'rejected' };

    reportRunEnd(logger, noMetrics, END, 'p/manifests/m.json');
    reportRunEnd(logger, noMetrics, { ...END, status: 'failed', error }, undefined);

    const [committed, failed] = logger.lines.map((l) => JSON.parse(l));
    expect(committed).toEqual({
      level: 'INFO',
      message: 'snapshot committed',
      extra: [
        {
          snapshotId: END.snapshot_id,
          runId: END.run_id,
          manifestKey: 'p/manifests/m.json',
          error: null,
          counts: END.counts,
          files: 2,
          durationMs: 12_500,
        },
      ],
    });
    expect(failed).toMatchObject({ level: 'ERROR', message: 'snapshot failed', extra: [{ error }] });
  });
});

describe('createMetricsSink when metrics are off', () => {
  it('writes no EMF line', () => {
    expect(createMetricsSink({ metricsEnabled: false, metricsNamespace: 'X' })).toBe(noMetrics);
  });
});
