/**
 * The AWS SDK reads endpoints, region, credentials and checksum mode from the environment by
 * itself (that is how the job targets emulators with no code of its own), so tests that build
 * the real runtime set them for the duration of a file and put the old values back afterwards.
 */
export function useProcessEnv(env: Record<string, string>): () => void {
  const previous = new Map(Object.keys(env).map((key) => [key, process.env[key]]));
  Object.assign(process.env, env);
  return () => {
    for (const [key, value] of previous) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}
