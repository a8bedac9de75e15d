import type { Template } from 'aws-cdk-lib/assertions';
import type { RunMetrics } from '../../lambda/core/observability';
import { resolveTokens } from '../../local/state-machine-definitions';
import { emfLinesOf } from '../helpers/emf-lines';
import { synthStack } from '../helpers/synth-stack';

/**
 * The dashboard in the synthesized template, held to what really emits metrics: each metric a
 * widget names in the job's namespace must be one the job's own EMF sink prints (run here) or
 * one the state machine's own PutMetricData state puts (read from the synthesized definition),
 * with exactly the dimensions they carry; AWS/States metrics must name this state machine.
 */

// biome-ignore lint/suspicious/noExplicitAny: dashboard bodies are checked field by field.
type Json = Record<string, any>;

const NAMESPACE = 'MoonKeySessionExport';
const RUN: RunMetrics = {
  usersProcessed: 1,
  usersFailed: 0,
  usersNotFound: 0,
  sessionsExported: 1,
  itemsRejected: 0,
  retries: 0,
  durationSeconds: 1,
  committed: true,
  trigger: 'scheduled',
};

/** `name{dim=value,...}`: a metric with its dimensions, in one comparable string. */
const key = (name: string, dimensions: Record<string, string>) =>
  `${name}{${Object.entries(dimensions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([d, v]) => `${d}=${v}`)
    .join(',')}}`;

/** What the job's sink prints for one run of each trigger, as `name{dims}` keys. */
function emittedByTheJob(): Set<string> {
  const keys = new Set<string>();
  for (const trigger of ['scheduled', 'audit'] as const) {
    for (const emf of emfLinesOf({ ...RUN, trigger }, NAMESPACE) as Json[]) {
      for (const directive of emf._aws.CloudWatchMetrics as Json[]) {
        expect(directive.Namespace).toBe(NAMESPACE);
        for (const dimensionSet of directive.Dimensions as string[][]) {
          const dimensions = Object.fromEntries(dimensionSet.map((d) => [d, String(emf[d])]));
          for (const metric of directive.Metrics as { Name: string }[])
            keys.add(key(metric.Name, dimensions));
        }
      }
    }
  }
  return keys;
}

/** What the state machine's own PutMetricData states put. */
function emittedByTheStateMachine(template: Template): Set<string> {
  const keys = new Set<string>();
  for (const [id, machine] of Object.entries(template.findResources('AWS::StepFunctions::StateMachine'))) {
    if (!id.startsWith('Run')) continue;
    const definition = JSON.parse(resolveTokens(machine.Properties.DefinitionString, (ref) => `<${ref}>`));
    for (const state of Object.values(definition.States as Json)) {
      if (state.Resource !== 'arn:aws:states:::aws-sdk:cloudwatch:putMetricData') continue;
      expect(state.Parameters.Namespace).toBe(NAMESPACE);
      for (const datum of state.Parameters.MetricData as Json[]) {
        const dimensions = Object.fromEntries(
          (datum.Dimensions as { Name: string; Value: string }[]).map((d) => [d.Name, d.Value]),
        );
        keys.add(key(datum.MetricName, dimensions));
      }
    }
  }
  return keys;
}

interface WidgetMetric {
  readonly widget: string;
  readonly namespace: string;
  readonly name: string;
  readonly dimensions: Record<string, string>;
}

let template: Template;
let widgets: Json[];
let metrics: WidgetMetric[];

beforeAll(() => {
  template = synthStack({ createDemoUsersTable: true, maxRequestsPerSecond: 50 });
  const dashboards = Object.values(template.findResources('AWS::CloudWatch::Dashboard'));
  expect(dashboards).toHaveLength(1);
  const body = JSON.parse(resolveTokens(dashboards[0]?.Properties.DashboardBody, (ref) => `<${ref}>`));
  widgets = body.widgets as Json[];
  metrics = widgets.flatMap((w) =>
    ((w.properties.metrics ?? []) as unknown[][])
      .filter((m) => typeof m[0] === 'string')
      .map((m) => {
        const fields = m.filter((x) => typeof x === 'string') as string[];
        const [namespace = '', name = '', ...pairs] = fields;
        const dimensions: Record<string, string> = {};
        for (let i = 0; i + 1 < pairs.length; i += 2) dimensions[pairs[i] ?? ''] = pairs[i + 1] ?? '';
        return { widget: w.properties.title as string, namespace, name, dimensions };
      }),
  );
}, 120_000);

describe('the dashboard', () => {
  it('shows what an operator looks at, one widget each', () => {
    expect(widgets.map((w) => w.properties.title)).toEqual([
      'Run duration (s)',
      'Users per second',
      'Users processed and sessions exported',
      'Failed and not-found users, rejected items',
      'Retried API calls (429s and transient errors)',
      'Executions by status',
      'Age of the last committed scheduled snapshot (h)',
      'Completion events not published',
      'Alarms',
    ]);
  });

  it('names only metrics the job or its state machine really emits, with the dimensions they carry', () => {
    const emitted = new Set([...emittedByTheJob(), ...emittedByTheStateMachine(template)]);
    const own = metrics.filter((m) => m.namespace === NAMESPACE);
    expect(own.length).toBeGreaterThanOrEqual(10);
    const unknown = own
      .map((m) => `${m.widget}: ${key(m.name, m.dimensions)}`)
      .filter((k) => !emitted.has(k.slice(k.indexOf(': ') + 2)));
    expect(unknown).toEqual([]);
  });

  it('reads the Step Functions metrics of the export state machine only', () => {
    const states = metrics.filter((m) => m.namespace === 'AWS/States');
    expect(states.map((m) => m.name).sort()).toEqual([
      'ExecutionsAborted',
      'ExecutionsFailed',
      'ExecutionsStarted',
      'ExecutionsSucceeded',
      'ExecutionsTimedOut',
    ]);
    for (const m of states)
      expect(m.dimensions).toEqual({ StateMachineArn: expect.stringMatching(/^<RunStateMachine/) });
    expect(metrics.every((m) => m.namespace === NAMESPACE || m.namespace === 'AWS/States')).toBe(true);
  });

  it('divides users by run seconds, against EXPORT_MAX_RPS when one is set', () => {
    const perSecond = widgets.find((w) => w.properties.title === 'Users per second')?.properties;
    expect(perSecond.metrics).toEqual(
      expect.arrayContaining([[expect.objectContaining({ expression: 'users / seconds' })]]),
    );
    expect(perSecond.annotations.horizontal).toEqual([expect.objectContaining({ value: 50 })]);
  });

  it('derives the snapshot age from the scheduled SnapshotCommitted metric the staleness alarm reads', () => {
    const age = widgets.find((w) => w.properties.title.startsWith('Age of'))?.properties;
    const expressions = (age.metrics as unknown[][]).flatMap((m) => m.filter((x) => typeof x === 'object'));
    expect(expressions).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          expression: '(EPOCH(hours) - FILL(IF(hours > 0, EPOCH(hours)), REPEAT)) / 3600',
        }),
        expect.objectContaining({ expression: 'FILL(committed, 0)', id: 'hours' }),
      ]),
    );
    expect(metrics.filter((m) => m.widget.startsWith('Age of'))).toEqual([
      expect.objectContaining({
        name: 'SnapshotCommitted',
        dimensions: { service: 'moonkey-session-export', trigger: 'scheduled' },
      }),
    ]);
  });

  it('shows every alarm of the stack', () => {
    const shown = widgets.find((w) => w.properties.title === 'Alarms')?.properties.alarms as string[];
    const alarms = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));
    expect(shown).toHaveLength(alarms.length);
    for (const id of alarms)
      expect(shown.some((arn) => arn.includes(`<${id}>`) || arn.includes(id))).toBe(true);
  });
});
