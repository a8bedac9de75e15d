import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { auditExecutionName, scheduledExecutionName } from '../../local/execution-name';
import { executionNames, parseAuditArgs, progressFromHistory, progressLine } from '../../scripts/audit';
import { scheduledEvent } from '../helpers/scheduled-event';

describe('parseAuditArgs', () => {
  it('builds the audit payload the handler accepts', () => {
    const args = parseAuditArgs(['--reason', 'incident 42', '--user', 'u1', '--user', 'u2']);
    expect(args.payload).toEqual({ reason: 'incident 42', userIds: ['u1', 'u2'], dryRun: false });
    expect(args.stack).toBe('MoonKeySessionExport');
    expect(args.outputsFile).toBe('cdk-outputs.json');
  });

  it('exports everyone when no --user is given', () => {
    expect(parseAuditArgs(['--reason', 'quarterly review', '--dry-run']).payload).toEqual({
      reason: 'quarterly review',
      dryRun: true,
    });
  });

  it('refuses to run without a reason', () => {
    expect(() => parseAuditArgs(['--user', 'u1'])).toThrow(/--reason is required/);
  });
});

describe('auditExecutionName', () => {
  it('is audit-<compact UTC time>-<random>, with no character an execution name refuses', () => {
    const name = auditExecutionName(new Date('2026-11-27T10:15:00.123Z'), '3f9a1c2b');
    expect(name).toBe('audit-20261127T101500Z-3f9a1c2b');
    expect(auditExecutionName(new Date())).toMatch(/^audit-\d{8}T\d{6}Z-[0-9a-f]{8}$/);
  });
});

describe('scheduledExecutionName', () => {
  it("is the launcher's name for the slot, whatever form the time was given in", () => {
    expect(scheduledExecutionName('2026-11-27T02:00:00Z')).toBe('scheduled-20261127T020000Z');
    expect(scheduledExecutionName('2026-11-27T03:00:00.000+01:00')).toBe('scheduled-20261127T020000Z');
  });
});

describe('progressFromHistory', () => {
  const entered = (id: number, name: string, type = 'TaskStateEntered'): HistoryEvent => ({
    id,
    type: type as HistoryEvent['type'],
    timestamp: new Date(),
    stateEnteredEventDetails: { name },
  });

  it('says a run is queued while it waits for an earlier one', () => {
    const progress = progressFromHistory([
      entered(2, 'ListRunningExecutions'),
      entered(5, 'WaitForTurn', 'WaitStateEntered'),
      entered(8, 'ListRunningExecutions'),
      entered(11, 'WaitForTurn', 'WaitStateEntered'),
    ]);
    expect(progress).toEqual({ state: 'WaitForTurn', workInvocations: 0, planned: false, waits: 2 });
    expect(progressLine(progress, 65_000)).toBe('65s  queued behind an earlier run (checked 2 time(s))');
  });

  it('counts Work invocations and names the current state once planned', () => {
    const progress = progressFromHistory([
      entered(2, 'Plan'),
      entered(7, 'Segments', 'MapStateEntered'),
      entered(9, 'Work'),
      entered(10, 'Work'),
      { id: 11, type: 'TaskSucceeded', timestamp: new Date(), previousEventId: 10 },
      entered(14, 'SegmentDone', 'ChoiceStateEntered'),
      entered(15, 'Work'),
    ]);
    expect(progress).toMatchObject({ state: 'Work', workInvocations: 3, planned: true });
    expect(progressLine(progress, 12_300)).toBe('12s  Work  work invocations 3');
  });
});

describe('executionNames', () => {
  const now = new Date('2026-11-27T10:15:00Z');

  it("offers a scheduled event's slot name first, then its reruns", () => {
    const names = executionNames(scheduledEvent('2026-11-27T02:00:00Z'), now);
    expect([names.next().value, names.next().value, names.next().value]).toEqual([
      'scheduled-20261127T020000Z',
      'scheduled-20261127T020000Z-rerun-1',
      'scheduled-20261127T020000Z-rerun-2',
    ]);
  });

  it('gives an audit request one audit name', () => {
    const names = [...executionNames({ reason: 'incident 42' }, now)];
    expect(names).toHaveLength(1);
    expect(names[0]).toMatch(/^audit-20261127T101500Z-[0-9a-f]{8}$/);
  });
});
