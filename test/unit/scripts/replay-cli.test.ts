import { join } from 'node:path';
import { UsageError } from '../../../scripts/audit-payload';
import { parseReplayArgs, readMessage } from '../../../scripts/replay';
import { thrownBy } from '../../helpers/thrown-by';

const RECORD = join(__dirname, '../../fixtures/failure-queue/lambda-on-failure-record.json');

describe('npm run replay arguments', () => {
  it('take one message and the stack flags npm run audit takes', () => {
    expect(
      parseReplayArgs([
        RECORD,
        '--print',
        '--state-machine-arn',
        'arn:aws:states:eu-west-1:123456789012:stateMachine:x',
      ]),
    ).toEqual({
      source: RECORD,
      print: true,
      stack: 'MoonKeySessionExport',
      stateMachineArn: 'arn:aws:states:eu-west-1:123456789012:stateMachine:x',
      outputsFile: 'cdk-outputs.json',
    });
    expect(parseReplayArgs(['-']).print).toBe(false);
  });

  it('refuse no message, two messages and unknown flags', () => {
    expect(thrownBy(() => parseReplayArgs([]), UsageError).message).toMatch(/^give one message/);
    expect(thrownBy(() => parseReplayArgs(['a.json', 'b.json']), UsageError).message).toMatch(
      /^give one message/,
    );
    expect(() => parseReplayArgs([RECORD, '--dry-run'])).toThrow(/Unknown option '--dry-run'/);
  });
});

describe('readMessage', () => {
  it('reads a file, takes JSON text as it is, and reads stdin for -', () => {
    expect(JSON.parse(readMessage(RECORD)).requestContext.condition).toBe('RetriesExhausted');
    expect(readMessage(' {"reason":"rerun"}')).toBe(' {"reason":"rerun"}');
    expect(readMessage('-', () => '{"from":"stdin"}')).toBe('{"from":"stdin"}');
  });

  it('says which file is missing', () => {
    expect(thrownBy(() => readMessage('no-such-message.json'), UsageError).message).toMatch(
      /^no such file: no-such-message.json/,
    );
  });
});
