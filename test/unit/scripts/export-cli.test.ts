import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { UsageError } from '../../../scripts/audit-payload';
import { eventFromArgs } from '../../../scripts/export';
import { thrownBy } from '../../helpers/thrown-by';

const BAD_SCHEDULED_TIMES = [
  'tomorrow',
  '2026-11-26',
  '2026-11-26T02:00:00',
  '2026-02-30T00:00:00Z',
  '2026-13-01T00:00:00Z',
  '1900-01-01T00:00:00Z',
  '9999-01-01T00:00:00Z',
];

const now = new Date('2026-11-26T10:00:00Z');

describe('npm run export arguments', () => {
  it('default to the scheduled snapshot of now, as the scheduler would send it', () => {
    expect(eventFromArgs([], now)).toEqual({
      'detail-type': 'Scheduled Event',
      source: 'moonkey.cli',
      time: '2026-11-26T10:00:00.000Z',
      detail: {},
    });
  });

  it('take a scheduled slot', () => {
    expect(eventFromArgs(['--scheduled-time', '2026-11-25T02:00:00Z'], now)).toMatchObject({
      time: '2026-11-25T02:00:00Z',
    });
  });

  it('become an audit with --reason, repeated --user and --dry-run', () => {
    expect(eventFromArgs(['--reason', 'SEC-142', '--user', 'u1', '--user', 'u 2', '--dry-run'], now)).toEqual(
      {
        reason: 'SEC-142',
        userIds: ['u1', 'u 2'],
        dryRun: true,
      },
    );
  });

  it('refuse audit-only flags without a reason, and unknown flags', () => {
    expect(() => eventFromArgs(['--user', 'u1'], now)).toThrow('--user and --dry-run are for audits');
    expect(() => eventFromArgs(['--users', 'u1'], now)).toThrow(/Unknown option '--users'/);
    // Audit flags are checked with the handler's own schema before anything runs.
    expect(() => eventFromArgs(['--reason', 'x'], now)).toThrow('--reason must be at least 3 characters');
    expect(() => eventFromArgs(['--reason', 'review', '--user', ''], now)).toThrow(
      '--user must not be empty',
    );
  });

  it.each(BAD_SCHEDULED_TIMES)('refuse --scheduled-time %s as a usage error, with the rule', (time) => {
    const error = thrownBy(() => eventFromArgs(['--scheduled-time', time], now), UsageError);

    expect(error.message).toMatch(/^--scheduled-time must /);
    expect(error.message).toContain(time);
  });

  it('exit with code 2 for every bad --scheduled-time, before invoking anything', async () => {
    const run = promisify(execFile);
    const tsx = join(__dirname, '../../../node_modules/.bin/tsx');
    const script = join(__dirname, '../../../scripts/export.ts');
    // One process per form, at once: a bad argument must never reach the handler (exit 1).
    const codes = await Promise.all(
      BAD_SCHEDULED_TIMES.map((time) =>
        run(tsx, [script, '--scheduled-time', time], { env: { PATH: process.env.PATH ?? '' } }).then(
          () => 0,
          (error: { code?: number }) => error.code,
        ),
      ),
    );

    expect(codes).toEqual(BAD_SCHEDULED_TIMES.map(() => 2));
  });
});
