import { UsageError } from '../../../scripts/audit-payload';
import { parseSmokeArgs, parseUsers } from '../../../scripts/smoke';

describe('parseSmokeArgs', () => {
  it('checks the stack infra/app.ts deploys, with 3 users from its table and a 10-minute wait', () => {
    expect(parseSmokeArgs([])).toEqual({
      stackName: 'MoonKeySessionExport',
      region: undefined,
      users: { kind: 'count', count: 3 },
      timeoutMs: 600_000,
      executionPollMs: 5_000,
      queryPollMs: 1_000,
    });
  });

  it('takes the stack name, region and timeout', () => {
    const options = parseSmokeArgs([
      '--stack-name',
      'Staging',
      '--region',
      'eu-central-1',
      '--timeout',
      '90',
    ]);
    expect(options).toMatchObject({ stackName: 'Staging', region: 'eu-central-1', timeoutMs: 90_000 });
  });

  it.each(['0', '-5', 'soon', ''])('refuses --timeout %p', (value) => {
    expect(() => parseSmokeArgs([`--timeout=${value}`])).toThrow(
      /--timeout .*must be a number of seconds above 0/,
    );
  });

  it('refuses an option it does not know as a usage error', () => {
    expect(() => parseSmokeArgs(['--stack', 'x'])).toThrow(UsageError);
    expect(() => parseSmokeArgs(['--stack', 'x'])).toThrow(
      /Unknown option '--stack'[\s\S]*usage: npm run smoke/,
    );
  });
});

describe('parseUsers', () => {
  it('reads digits as a count of users to take from the users table', () => {
    expect(parseUsers('5')).toEqual({ kind: 'count', count: 5 });
  });

  it.each(['0', '101'])('refuses a count of %s', (value) => {
    expect(() => parseUsers(value)).toThrow(/--users .*a count must be from 1 to 100/);
  });

  it('reads anything else as a comma-separated list of ids; a comma makes one all-digit id a list', () => {
    expect(parseUsers('user_1, user_2,')).toEqual({ kind: 'ids', ids: ['user_1', 'user_2'] });
    expect(parseUsers('123,')).toEqual({ kind: 'ids', ids: ['123'] });
  });

  it("refuses a list the handler would refuse, in the handler's words and this flag's name", () => {
    expect(() => parseUsers(',')).toThrow(/^--users must name at least one user when given/);
    expect(() => parseUsers(`u1,${'x'.repeat(1025)}`)).toThrow(/^--users/);
  });
});
