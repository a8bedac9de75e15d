import { eventFromArgs } from '../../scripts/export';

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
    expect(() => eventFromArgs(['--scheduled-time', 'tomorrow'], now)).toThrow(
      '--scheduled-time must be ISO-8601',
    );
    expect(() => eventFromArgs(['--users', 'u1'], now)).toThrow(/Unknown option '--users'/);
    // Audit flags are checked with the handler's own schema before anything runs.
    expect(() => eventFromArgs(['--reason', 'x'], now)).toThrow('--reason must be at least 3 characters');
    expect(() => eventFromArgs(['--reason', 'review', '--user', ''], now)).toThrow(
      '--user must not be empty',
    );
  });
});
