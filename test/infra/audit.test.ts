import { parseAuditArgs } from '../../scripts/audit';

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
