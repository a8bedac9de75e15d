// The bundled function in a plain Node process, as Lambda's Node runtime holds it: `require` the
// artifact once (the cold start), then one `handler(event, context)` per invocation message. It
// reaches nothing of jest or the repository's node_modules, so the bundle must be self-contained.
// The parent (test/helpers/bundle-host.ts) sends {id, event, context, remainingMs}: the fields of
// the runner's Lambda context, whose clock is rebuilt here from the time left. It gets {id, result}
// or {id, error}; errors keep only name and message, as Lambda's error document does.
const { handler } = require(process.env.BUNDLE_ENTRY);

process.on('message', async (message) => {
  const { id, event, context: fields, remainingMs } = message;
  const deadline = Date.now() + remainingMs;
  const context = { ...fields, getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()) };
  try {
    const result = await handler(event, context);
    process.send({ id, result: result === undefined ? null : result });
  } catch (error) {
    const e = error instanceof Error ? error : new Error(String(error));
    process.send({ id, error: { name: e.name, message: e.message } });
  }
});

process.send({ ready: true, node: process.version });
