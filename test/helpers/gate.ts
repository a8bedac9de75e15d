/** A call held until the test lets it go: hand `promise` to a fake's latency hook, then `open()`. */
export function gate(): { promise: Promise<void>; open: () => void } {
  let open: () => void = () => undefined;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

/**
 * Resolves when `condition` holds, checked once per event-loop turn, so a test waits for a state
 * rather than for a time; throws (naming `what`) if it never comes.
 */
export async function until(condition: () => boolean, what: string, turns = 100_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`never happened: ${what}`);
}
