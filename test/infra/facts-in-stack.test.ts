/**
 * The stack states no shared fact of its own: the alarms name only metrics the job emits, the
 * function gets the job's defaults, and the Glue tables project from the first partition date.
 */
import type { Template } from 'aws-cdk-lib/assertions';
import { firstPartitionDate } from '../../infra/constructs/sessions-catalog';
import {
  DEFAULT_API_URL,
  DEFAULT_CONCURRENCY,
  DEFAULT_EXPORT_PREFIX,
  DEFAULT_METRICS_NAMESPACE,
  DEFAULT_USER_ID_ATTRIBUTE,
  FIRST_PARTITION_DATE,
  FUNCTION_TIMEOUT_MS,
  METRIC_DIMENSIONS,
  METRICS,
  SERVICE_NAME,
  STATE_MACHINE_METRICS,
} from '../../lambda/core/facts';
import { synthStack } from '../helpers/synth-stack';

let template: Template;

beforeAll(() => {
  template = synthStack({ createDemoUsersTable: true });
}, 120_000);

interface Resource {
  // biome-ignore lint/suspicious/noExplicitAny: CloudFormation properties, asserted field by field
  Properties: any;
}
const resources = (type: string) => Object.values(template.findResources(type)) as Resource[];

describe('the alarms', () => {
  it('name only metrics and dimensions the job emits, in its namespace, with its service name', () => {
    const jobAlarms = resources('AWS::CloudWatch::Alarm').filter(
      (alarm) => alarm.Properties.Namespace === DEFAULT_METRICS_NAMESPACE,
    );
    // UsersFailed and SnapshotCommitted today; any alarm added on a job metric is checked too.
    expect(jobAlarms.length).toBeGreaterThanOrEqual(2);
    // The job's metrics, and the one the state machine puts itself (an unpublished completion event).
    const metricNames: string[] = [...Object.values(METRICS), ...Object.values(STATE_MACHINE_METRICS)];
    const dimensionNames: string[] = Object.values(METRIC_DIMENSIONS);
    for (const alarm of jobAlarms) {
      expect(metricNames).toContain(alarm.Properties.MetricName);
      const dimensions = alarm.Properties.Dimensions as { Name: string; Value: string }[];
      for (const { Name } of dimensions) expect(dimensionNames).toContain(Name);
      expect(dimensions).toContainEqual({ Name: METRIC_DIMENSIONS.service, Value: SERVICE_NAME });
    }
  });
});

describe('the export function', () => {
  it('gets the job defaults the config would choose, and the shared timeout', () => {
    const [fn, ...more] = resources('AWS::Lambda::Function').filter((f) =>
      String(f.Properties.Description ?? '').startsWith('MoonKey session snapshot export'),
    );
    expect(more).toEqual([]);
    expect(fn?.Properties.Timeout).toBe(FUNCTION_TIMEOUT_MS / 1000);
    expect(fn?.Properties.Environment.Variables).toMatchObject({
      USER_ID_ATTRIBUTE: DEFAULT_USER_ID_ATTRIBUTE,
      MOONKEY_API_URL: DEFAULT_API_URL,
      EXPORT_CONCURRENCY: String(DEFAULT_CONCURRENCY),
      EXPORT_PREFIX: DEFAULT_EXPORT_PREFIX,
      METRICS_NAMESPACE: DEFAULT_METRICS_NAMESPACE,
    });
  });
});

describe('the Glue tables', () => {
  it('project dt from the first partition date, under the prefix folders the job writes', () => {
    const tables = resources('AWS::Glue::Table').filter(
      (t) => t.Properties.TableInput.TableType === 'EXTERNAL_TABLE',
    );
    expect(tables).toHaveLength(2);
    for (const table of tables) {
      expect(table.Properties.TableInput.Parameters['projection.dt.range']).toBe(
        `${FIRST_PARTITION_DATE},NOW`,
      );
      expect(JSON.stringify(table.Properties.TableInput.Parameters['storage.location.template'])).toMatch(
        new RegExp(`/${DEFAULT_EXPORT_PREFIX}/(sessions|manifests)/dt=\\$\\{dt\\}/"\\]\\]\\}$`),
      );
    }
  });
});

describe('firstPartitionDate', () => {
  it('defaults to the first partition date the job writes scheduled snapshots from', () => {
    expect(firstPartitionDate(undefined)).toBe(FIRST_PARTITION_DATE);
  });

  it('keeps an earlier date: it only enumerates empty days', () => {
    expect(firstPartitionDate('2020-06-01')).toBe('2020-06-01');
    expect(firstPartitionDate(FIRST_PARTITION_DATE)).toBe(FIRST_PARTITION_DATE);
  });

  it('refuses a later date, whose snapshots Athena would not see', () => {
    expect(() => firstPartitionDate('2024-01-02')).toThrow(
      'firstPartitionDate 2024-01-02 is after 2024-01-01, the first day the job writes scheduled snapshots for',
    );
  });

  it.each(['2024-1-1', '2024-13-01', 'yesterday', ''])('refuses %p, which is not a date', (date) => {
    expect(() => firstPartitionDate(date)).toThrow(
      `firstPartitionDate "${date}" must be a date like 2024-01-01`,
    );
  });
});
