import { z } from 'zod';
import { planFromEvent } from '../lambda/run/run-plan';

/**
 * What a failure-queue message asks to run again. The queue gets two shapes:
 * - EventBridge Scheduler's dead letters: the body IS the event the schedule sends (the scheduled
 *   event), and why it was not delivered is in the message attributes `ERROR_CODE` / `ERROR_MESSAGE`;
 * - Lambda's on-failure destination: an invocation record, the event under `requestPayload`, why
 *   it failed under `requestContext.condition` and `responsePayload` (the function's error).
 * Handed to the handler as-is, an invocation record is rejected, so it must be unwrapped first.
 */
export interface Replay {
  /** The event to start a run with: a scheduled event or an audit request, as the handler parses it. */
  readonly event: Record<string, unknown>;
  readonly from: 'event' | 'invocation-record';
  /** Why the original run did not happen or failed, when the message says so. */
  readonly failure: string | undefined;
}

/** Base of the errors below: the message cannot be replayed as it is. */
export class ReplayMessageError extends Error {
  override readonly name: string = 'ReplayMessageError';
}

/** The text is not JSON (an SQS body, a message, `aws sqs receive-message` output or an event). */
export class MessageNotJsonError extends ReplayMessageError {
  override readonly name = 'MessageNotJsonError';
}

/** `aws sqs receive-message` output with no message, or with more than one. */
export class NotOneMessageError extends ReplayMessageError {
  override readonly name = 'NotOneMessageError';
}

/** A Lambda invocation record whose `requestPayload` is missing: the event is not in the message. */
export class RecordWithoutEventError extends ReplayMessageError {
  override readonly name = 'RecordWithoutEventError';
}

/** What was found (as-is or under `requestPayload`) is neither a scheduled event nor an audit request. */
export class NotARunEventError extends ReplayMessageError {
  override readonly name = 'NotARunEventError';
}

/** One SQS message as `aws sqs receive-message` prints it (or the SDK returns it). */
const sqsMessageSchema = z.looseObject({
  Body: z.string(),
  MessageAttributes: z.record(z.string(), z.looseObject({ StringValue: z.string().optional() })).optional(),
});

/** Lambda's asynchronous invocation record (the on-failure destination's message). */
const invocationRecordSchema = z.looseObject({
  requestContext: z.looseObject({ condition: z.string().optional(), functionArn: z.string().optional() }),
  responseContext: z.looseObject({}),
  requestPayload: z.unknown(),
  responsePayload: z.unknown().optional(),
});

const functionErrorSchema = z.looseObject({
  errorType: z.string().optional(),
  errorMessage: z.string().optional(),
});

function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new MessageNotJsonError(`${what} is not JSON: ${(error as Error).message}`, { cause: error });
  }
}

function recordFailure(record: z.infer<typeof invocationRecordSchema>): string {
  const condition = record.requestContext.condition ?? 'failed';
  const error = functionErrorSchema.safeParse(record.responsePayload);
  const detail =
    error.success && (error.data.errorType || error.data.errorMessage)
      ? `: ${error.data.errorType ?? 'Error'}: ${error.data.errorMessage ?? ''}`.trimEnd()
      : '';
  return `Lambda invocation ${condition}${detail}`;
}

/** Refuses anything the handler would refuse, in the handler's words, before a run is started. */
function checkedEvent(value: unknown, taken: string): Record<string, unknown> {
  try {
    planFromEvent(value, new Date(), 'replay');
  } catch (error) {
    throw new NotARunEventError(
      `${taken} is not an event the export function accepts. ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  return value as Record<string, unknown>;
}

/**
 * The event in one failure-queue message, already parsed from JSON: a message body (either shape
 * above), a whole SQS message (`Body` a JSON string, Scheduler's error in its attributes), or
 * `aws sqs receive-message` output holding exactly one message.
 */
export function replayFromMessage(message: unknown): Replay {
  const received = z.looseObject({ Messages: z.array(z.unknown()) }).safeParse(message);
  if (received.success) {
    const [only, ...more] = received.data.Messages;
    if (only === undefined || more.length > 0) {
      throw new NotOneMessageError(
        `expected exactly one message in the receive-message output, got ${received.data.Messages.length}: replay one message at a time`,
      );
    }
    return replayFromMessage(only);
  }
  const sqs = sqsMessageSchema.safeParse(message);
  if (sqs.success) {
    const replay = replayFromMessage(parseJson(sqs.data.Body, 'the message Body'));
    const attributes = sqs.data.MessageAttributes ?? {};
    const code = attributes.ERROR_CODE?.StringValue;
    const text = attributes.ERROR_MESSAGE?.StringValue;
    const scheduler =
      code || text ? `Scheduler could not deliver it: ${[code, text].filter(Boolean).join(': ')}` : undefined;
    return { ...replay, failure: replay.failure ?? scheduler };
  }
  const record = invocationRecordSchema.safeParse(message);
  if (record.success) {
    if (record.data.requestPayload === undefined || record.data.requestPayload === null) {
      throw new RecordWithoutEventError(
        `this Lambda invocation record (${recordFailure(record.data)}) has no requestPayload: find the event in the function's logs`,
      );
    }
    return {
      event: checkedEvent(record.data.requestPayload, "the invocation record's requestPayload"),
      from: 'invocation-record',
      failure: recordFailure(record.data),
    };
  }
  return { event: checkedEvent(message, 'the message'), from: 'event', failure: undefined };
}

/** `replayFromMessage` for text: a file's content or a JSON argument. */
export function replayFromText(text: string): Replay {
  return replayFromMessage(parseJson(text, 'the message'));
}
