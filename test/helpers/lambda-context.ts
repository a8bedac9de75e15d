/** The part of a Lambda Context the handler reads: one fake for every test. */
export function fakeContext(remainingMs = 900_000, awsRequestId = 'c0ffee00-0000-4000-8000-000000000001') {
  const deadline = Date.now() + remainingMs;
  return { awsRequestId, getRemainingTimeInMillis: () => deadline - Date.now() };
}
