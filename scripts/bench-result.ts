/** What scripts/bench.ts sends a bench-job process, and what that process prints back. */
export interface BenchJob {
  readonly mode: 'job' | 'naive-all' | 'naive-seq';
  /** Environment for the job (the local stack's variables plus the configuration under test). */
  readonly env: Record<string, string>;
  readonly scheduledTime: string;
  /** The synthesized state-machine definitions (JSON), for `job` mode. */
  readonly definitionsFile: string;
  /** Naive modes only: at most this many users (a sequential run at 50 ms a call is slow). */
  readonly maxUsers?: number;
}

export interface BenchJobResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly users: number;
  readonly wallMs: number;
  readonly cpuUserMs: number;
  readonly cpuSystemMs: number;
  readonly maxRssBytes: number;
  readonly files: number;
  readonly bytes: number;
  readonly requests: number;
  readonly retries: number;
  /** Peaks of process.memoryUsage(), sampled every 250 ms: where the RSS goes. */
  readonly memory?: Record<string, number>;
}

/** The result of a run that produced nothing (it crashed, or was killed at its time limit). */
export function failedResult(error: string): BenchJobResult {
  return {
    ok: false,
    error,
    users: 0,
    wallMs: 0,
    cpuUserMs: 0,
    cpuSystemMs: 0,
    maxRssBytes: 0,
    files: 0,
    bytes: 0,
    requests: 0,
    retries: 0,
  };
}
