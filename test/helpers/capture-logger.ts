import type { JobLogger } from '../../lambda/core/observability';

export interface CapturedLogger extends JobLogger {
  /** Every log call as one JSON line, in order. */
  readonly lines: string[];
  text(): string;
}

/** A JobLogger that keeps what would have been printed, so tests can read (and grep) the logs. */
export function captureLogger(): CapturedLogger {
  const lines: string[] = [];
  const at =
    (level: string) =>
    (message: unknown, ...extra: unknown[]) => {
      lines.push(JSON.stringify({ level, message, extra }));
    };
  return {
    lines,
    text: () => lines.join('\n'),
    debug: at('DEBUG'),
    info: at('INFO'),
    warn: at('WARN'),
    error: at('ERROR'),
  } as CapturedLogger;
}
