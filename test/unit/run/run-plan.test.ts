import { InvalidEventError } from '../../../lambda/core/errors';
import { planFromEvent } from '../../../lambda/run/run-plan';
import { partitionDate } from '../../../lambda/snapshot/snapshot-id';
import { thrownBy } from '../../helpers/thrown-by';

const now = new Date('2026-11-26T09:15:30.123Z');
const ruleEvent = {
  version: '0',
  id: '53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa',
  'detail-type': 'Scheduled Event',
  source: 'aws.events',
  account: '123456789012',
  time: '2026-11-26T02:00:00Z',
  region: 'eu-west-1',
  resources: ['arn:aws:events:eu-west-1:123456789012:rule/nightly'],
  detail: {},
};

const rejection = (event: unknown) => thrownBy(() => planFromEvent(event, now, 'req-1'), InvalidEventError);

describe('planFromEvent', () => {
  it.each([
    ['1900-01-01T00:00:00Z', 'must not be before 2024-01-01T00:00:00Z'],
    ['2023-12-31T23:59:59Z', 'must not be before 2024-01-01T00:00:00Z'],
    ['9999-12-31T00:00:00Z', 'must not be more than one day after now'],
    ['2026-11-27T09:15:31Z', 'must not be more than one day after now'],
  ])('refuses a scheduled time outside the Athena projection range: %s', (time, problem) => {
    const error = rejection({ ...ruleEvent, time });

    expect(error.message).toContain(problem);
    expect(error.issues).toEqual([expect.stringContaining(`time: ${problem}`)]);
  });

  it('accepts the first projected day and a slot up to one day ahead of the clock', () => {
    expect(planFromEvent({ ...ruleEvent, time: '2024-01-01T00:00:00Z' }, now, 'r').snapshotAt).toBe(
      Date.parse('2024-01-01T00:00:00Z') / 1000,
    );
    expect(planFromEvent({ ...ruleEvent, time: '2026-11-27T09:15:30Z' }, now, 'r').snapshotId).toBe(
      'scheduled-20261127T091530Z',
    );
  });

  it('derives a scheduled snapshot id from the scheduled time alone', () => {
    const first = planFromEvent(ruleEvent, now, 'req-1');
    const retry = planFromEvent({ ...ruleEvent, id: 'another-delivery' }, new Date(), 'req-2');

    expect(first).toEqual({
      snapshotId: 'scheduled-20261126T020000Z',
      snapshotAt: Date.parse('2026-11-26T02:00:00Z') / 1000,
      trigger: 'scheduled',
      reason: undefined,
      users: { kind: 'scan' },
      dryRun: false,
      runId: expect.stringMatching(/^r20261126T091530123Z-[a-z0-9]{6}$/),
      startedAt: now.toISOString(),
    });
    expect(retry.snapshotId).toBe(first.snapshotId);
    // Same slot, another run: a retry or duplicate delivery is told apart by its run id.
    expect(retry.runId).not.toBe(first.runId);
  });

  it('repeats the run id when given the same suffix (a retried Step Functions Plan), and orders runs by start time', () => {
    const a = planFromEvent(ruleEvent, now, 'exec', { runIdSuffix: 'abc123ffff' });
    const b = planFromEvent(ruleEvent, now, 'exec', { runIdSuffix: 'abc123ffff' });
    const later = planFromEvent(ruleEvent, new Date(now.getTime() + 1), 'exec', { runIdSuffix: '000000' });

    expect(a.runId).toBe('r20261126T091530123Z-abc123');
    expect(b.runId).toBe(a.runId);
    expect(later.runId > a.runId).toBe(true);
  });

  it('accepts the EventBridge Scheduler shape the stack sends, with an offset time', () => {
    const plan = planFromEvent(
      {
        'detail-type': 'Scheduled Event',
        source: 'aws.scheduler',
        time: '2026-11-26T03:00:00+01:00',
        detail: {},
      },
      now,
      'req',
    );

    expect(plan.snapshotId).toBe('scheduled-20261126T020000Z');
  });

  it('accepts the event `npm run export` sends as the scheduler (source moonkey.cli)', () => {
    const plan = planFromEvent({ ...ruleEvent, source: 'moonkey.cli' }, now, 'req');

    expect(plan.trigger).toBe('scheduled');
    expect(plan.snapshotId).toBe('scheduled-20261126T020000Z');
  });

  it('gives an audit its own id and records the reason, deduplicating user ids', () => {
    const plan = planFromEvent(
      { reason: '  SEC-142 account takeover review ', userIds: ['user_a', 'user_b', 'user_a'] },
      now,
      'c0ffee00-1111-2222',
    );

    expect(plan).toMatchObject({
      snapshotId: 'audit-20261126T091530Z-11112222',
      snapshotAt: Math.floor(now.getTime() / 1000),
      trigger: 'audit',
      reason: 'SEC-142 account takeover review',
      users: { kind: 'list', userIds: ['user_a', 'user_b'] },
      dryRun: false,
    });
  });

  it('scans everyone for an audit without user ids, and keeps dryRun', () => {
    const plan = planFromEvent({ reason: 'quarterly review', dryRun: true }, now, 'r');

    expect(plan.users).toEqual({ kind: 'scan' });
    expect(plan.dryRun).toBe(true);
  });

  it('rejects an audit without a reason, with unknown keys, or with an empty user list', () => {
    expect(rejection({ userIds: ['u'] }).issues).toEqual(['reason: is required: say why this audit runs']);
    expect(rejection({ reason: 'review', userId: 'u' }).issues).toEqual([
      'event: Unrecognized key: "userId"',
    ]);
    expect(rejection({ reason: 'review', userIds: [] }).issues).toEqual([
      'userIds: must name at least one user when given',
    ]);
  });

  it.each([
    ['a reason too short to say why', { reason: ' ab ' }, 'reason: must be at least 3 characters'],
    [
      'a reason of more than 1000 characters',
      { reason: 'x'.repeat(1001) },
      'reason: must be at most 1000 characters',
    ],
    ['an empty user id', { reason: 'review', userIds: ['u', ''] }, 'userIds.1: must not be empty'],
    [
      'user ids that are not a list',
      { reason: 'review', userIds: 'u1' },
      'userIds: must be a list of user ids',
    ],
    [
      'more than 10000 user ids',
      { reason: 'review', userIds: Array.from({ length: 10_001 }, (_, i) => `u${i}`) },
      'userIds: must name at most 10000 users (omit it to export everyone)',
    ],
    ['a dryRun that is not a boolean', { reason: 'review', dryRun: 'yes' }, 'dryRun: must be true or false'],
  ])('rejects an audit request with %s, saying what the rule is', (_, event, issue) => {
    const error = rejection(event);

    expect(error.issues).toEqual([issue]);
    expect(error.message).toContain(`As an audit request: ${issue}`);
  });

  it('rejects a scheduled event with a bad time, explaining it as a scheduled event', () => {
    const error = rejection({ ...ruleEvent, time: 'tonight' });

    expect(error.message).toContain('As a scheduled event: time: must be an ISO-8601 timestamp');
  });

  it.each([null, 'run please', 42, [], {}])('rejects %p with a clear message', (event) => {
    expect(rejection(event).message).toMatch(
      /^Rejected the invocation payload: it is neither a scheduled event nor an audit request/,
    );
  });
});

describe('partitionDate', () => {
  it('is the UTC date of the snapshot time', () => {
    expect(partitionDate(Date.parse('2026-11-26T23:59:59Z') / 1000)).toBe('2026-11-26');
    expect(partitionDate(Date.parse('2026-11-27T00:00:00Z') / 1000)).toBe('2026-11-27');
  });
});
