import { METRICS, SERVICE_NAME } from '../../../lambda/core/facts';
import type { RunMetrics } from '../../../lambda/core/observability';
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
    expect(counts[0]).toMatchObject({ UsersProcessed: 10, UsersNotFound: 3, SessionsExported: 42 });
    expect(metricNames(counts[0] as EmfLine)).toContain('UsersNotFound');
    expect(counts[0]).not.toHaveProperty('trigger');
  });
});
