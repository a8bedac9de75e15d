/** What each variable was before the first layer that sets it, while any layer sets it. */
const before = new Map<string, string | undefined>();
/** The layers in force, oldest first: the newest layer that sets a variable decides its value. */
const layers: Record<string, string>[] = [];

/**
 * The AWS SDK reads endpoints, region, credentials and checksum mode from the environment by
 * itself (that is how the job targets emulators with no code of its own), so tests that build
 * the real runtime set them for a while and put the old values back afterwards. Layers may end
 * in any order (runs that overlap): ending one leaves each variable as the newest remaining
 * layer sets it, or as it was before them all.
 */
export function useProcessEnv(env: Record<string, string>): () => void {
  const layer = { ...env };
  for (const key of Object.keys(layer)) if (!before.has(key)) before.set(key, process.env[key]);
  layers.push(layer);
  Object.assign(process.env, layer);
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    layers.splice(layers.indexOf(layer), 1);
    for (const key of Object.keys(layer)) {
      const setter = layers.findLast((l) => key in l);
      const value = setter === undefined ? before.get(key) : setter[key];
      if (setter === undefined) before.delete(key);
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  };
}
