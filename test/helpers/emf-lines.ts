import { createMetricsSink, type RunMetrics } from '../../lambda/core/observability';

/** One CloudWatch embedded-metric-format line, as Powertools prints it. */
export interface EmfLine {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
  [key: string]: unknown;
}

/** Runs the job's MetricsSink for one run and returns the EMF lines it printed (Powertools writes stdout). */
export function emfLinesOf(run: RunMetrics, metricsNamespace = 'TestNamespace'): EmfLine[] {
  const written: string[] = [];
  const spy = jest.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    written.push(String(chunk));
    return true;
  });
  try {
    createMetricsSink({ metricsEnabled: true, metricsNamespace })(run);
  } finally {
    spy.mockRestore();
  }
  return written
    .join('')
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .map((line) => JSON.parse(line) as EmfLine);
}
