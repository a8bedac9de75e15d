import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  MessageNotJsonError,
  NotARunEventError,
  NotOneMessageError,
  RecordWithoutEventError,
  replayFromMessage,
  replayFromText,
} from '../../../scripts/replay-message';
import { thrownBy } from '../../helpers/thrown-by';

const fixture = (name: string) => readFileSync(join(__dirname, '../../fixtures/failure-queue', name), 'utf8');

const SCHEDULED_EVENT = {
  'detail-type': 'Scheduled Event',
  source: 'aws.scheduler',
  time: '2026-11-26T02:00:00Z',
  resources: ['arn:aws:scheduler:us-east-1:123456789012:schedule/default/MoonKeySessionExportSchedule'],
  detail: {},
};

describe('replayFromText', () => {
  it("takes a Scheduler dead letter (receive-message output) as the event itself, with Scheduler's error", () => {
    const replay = replayFromText(fixture('scheduler-dead-letter.json'));

    expect(replay).toEqual({
      event: SCHEDULED_EVENT,
      from: 'event',
      failure: 'Scheduler could not deliver it: AWS.Scheduler.TooManyRequestsException: Rate exceeded',
    });
  });

  it("takes a Scheduler dead letter's body alone", () => {
    const [message] = JSON.parse(fixture('scheduler-dead-letter.json')).Messages;

    expect(replayFromText(message.Body)).toEqual({
      event: SCHEDULED_EVENT,
      from: 'event',
      failure: undefined,
    });
  });

  it("unwraps Lambda's on-failure invocation record to its requestPayload, with the function's error", () => {
    const replay = replayFromText(fixture('lambda-on-failure-record.json'));

    expect(replay.event).toEqual(SCHEDULED_EVENT);
    expect(replay.from).toBe('invocation-record');
    expect(replay.failure).toMatch(/^Lambda invocation RetriesExhausted: ApiAuthError: MoonKey API rejected/);
  });

  it('unwraps an invocation record that arrives as an SQS message body', () => {
    const record = fixture('lambda-on-failure-record.json');

    const replay = replayFromMessage({ Messages: [{ MessageId: 'm-1', Body: record }] });

    expect(replay.event).toEqual(SCHEDULED_EVENT);
    expect(replay.failure).toMatch(/^Lambda invocation RetriesExhausted: ApiAuthError/);
  });

  it('unwraps an audit request from an invocation record that expired in the async queue', () => {
    const audit = { reason: 'incident 42', userIds: ['u1'], dryRun: false };
    const record = {
      ...JSON.parse(fixture('lambda-on-failure-record.json')),
      requestContext: { condition: 'EventAgeExceeded', approximateInvokeCount: 0 },
      requestPayload: audit,
      responsePayload: undefined,
    };

    expect(replayFromMessage(record)).toEqual({
      event: audit,
      from: 'invocation-record',
      failure: 'Lambda invocation EventAgeExceeded',
    });
  });

  it('passes a raw event (as `aws lambda invoke` would send it) through unchanged', () => {
    expect(replayFromText(JSON.stringify({ reason: 'rerun', dryRun: true }))).toEqual({
      event: { reason: 'rerun', dryRun: true },
      from: 'event',
      failure: undefined,
    });
  });
});

describe('replayFromText refuses what cannot be replayed', () => {
  it('text that is not JSON', () => {
    const error = thrownBy(() => replayFromText('Scheduled Event at 2am'), MessageNotJsonError);

    expect(error.message).toMatch(/^the message is not JSON/);
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  it('a message whose Body is not JSON', () => {
    const error = thrownBy(() => replayFromMessage({ Body: '{"detail-type":' }), MessageNotJsonError);

    expect(error.message).toMatch(/^the message Body is not JSON/);
  });

  it.each([
    [0, []],
    [2, [{ Body: '{}' }, { Body: '{}' }]],
  ])('receive-message output with %i messages', (count, messages) => {
    const error = thrownBy(() => replayFromMessage({ Messages: messages }), NotOneMessageError);

    expect(error.message).toContain(`got ${count}`);
  });

  it('an invocation record without requestPayload', () => {
    const record = { ...JSON.parse(fixture('lambda-on-failure-record.json')), requestPayload: undefined };

    const error = thrownBy(() => replayFromMessage(record), RecordWithoutEventError);

    expect(error.message).toContain('RetriesExhausted');
    expect(error.message).toContain("function's logs");
  });

  it("an invocation record whose requestPayload the handler would reject, in the handler's words", () => {
    const record = {
      ...JSON.parse(fixture('lambda-on-failure-record.json')),
      requestPayload: { ...SCHEDULED_EVENT, time: 'yesterday' },
    };

    const error = thrownBy(() => replayFromMessage(record), NotARunEventError);

    expect(error.message).toMatch(/^the invocation record's requestPayload is not an event/);
    expect(error.message).toContain('time: must be an ISO-8601 timestamp');
    expect(error.cause).toBeInstanceOf(Error);
  });

  it.each([
    ['an unrelated object', { hello: 'world' }],
    ['a string', 'replay me'],
    ['null', null],
    ['an array', [SCHEDULED_EVENT]],
  ])('%s', (_what, message) => {
    const error = thrownBy(() => replayFromMessage(message), NotARunEventError);

    expect(error.message).toMatch(/^the message is not an event the export function accepts/);
  });
});
