import { validateSessionExportProps } from '../../infra/validate-props';

const base = { createDemoUsersTable: true } as const;
const problemsOf = (props: Parameters<typeof validateSessionExportProps>[0]) => {
  try {
    validateSessionExportProps(props);
    return '';
  } catch (error) {
    return (error as Error).message;
  }
};

describe('validateSessionExportProps: PII props', () => {
  it('accepts the copies modes with a preset, an amended preset or the per-field form', () => {
    expect(problemsOf({ ...base, copies: 'both', piiPolicy: 'analytics,user_agent=drop' })).toBe('');
    expect(problemsOf({ ...base, copies: 'pseudonymized' })).toBe('');
    expect(
      problemsOf({
        ...base,
        copies: 'both',
        piiKeySecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pii-key-AbCdEf',
        piiKeySecretKmsKeyArn: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab',
      }),
    ).toBe('');
  });

  it('names the prop and the rule for a bad mode, policy or secret', () => {
    expect(problemsOf({ ...base, copies: 'hashed' as never })).toContain(
      'copies must be raw, pseudonymized or both (got "hashed")',
    );
    expect(problemsOf({ ...base, copies: 'both', piiPolicy: 'analytics,email=truncate' })).toContain(
      'piiPolicy email=truncate: only ip can be truncated',
    );
    expect(problemsOf({ ...base, copies: 'both', piiKeySecretArn: 'pii-key' })).toContain(
      'piiKeySecretArn must be the full Secrets Manager secret ARN',
    );
    expect(problemsOf({ ...base, copies: 'both', piiKeySecretKmsKeyArn: 'alias/pii' })).toContain(
      'piiKeySecretKmsKeyArn needs piiKeySecretArn',
    );
  });

  it('refuses PII props that would do nothing with copies=raw, and a plaintext key in jobEnvironment', () => {
    expect(problemsOf({ ...base, piiPolicy: 'minimal' })).toContain(
      'piiPolicy has no effect with copies=raw: set copies to pseudonymized or both',
    );
    expect(
      problemsOf({ ...base, copies: 'both', jobEnvironment: { EXPORT_PII_KEY: 'k'.repeat(40) } }),
    ).toContain('jobEnvironment.EXPORT_PII_KEY is refused');
    expect(problemsOf({ ...base, jobEnvironment: { EXPORT_COPIES: 'both' } })).toContain(
      'jobEnvironment.EXPORT_COPIES is set by the stack: use the typed prop instead',
    );
  });
});
