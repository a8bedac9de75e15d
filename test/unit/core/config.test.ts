import { effectiveSettings, parseConfig } from '../../../lambda/core/config';
import { ConfigError } from '../../../lambda/core/errors';
import { PII_PRESETS } from '../../../lambda/pii/pii-policy';
import { thrownBy } from '../../helpers/thrown-by';

const minimal = { USERS_TABLE_NAME: 'users', EXPORT_BUCKET_NAME: 'my-exports', MOONKEY_API_KEY: 'sk_test_x' };

const errorOf = (env: Record<string, string | undefined>) => thrownBy(() => parseConfig(env), ConfigError);

describe('parseConfig', () => {
  it('applies the documented defaults', () => {
    const config = parseConfig(minimal);

    expect(config).toMatchObject({
      userIdAttribute: 'user_id',
      prefix: 'moonkey',
      apiUrl: 'https://api.moonkey.fun',
      concurrency: 16,
      maxRps: undefined,
      maxAttempts: 5,
      scanSegments: 'auto',
      failedUsersTolerance: { kind: 'count', value: 0 },
      notFoundUsersTolerance: { kind: 'percent', value: 50 },
      targetFileBytes: 128 * 1024 * 1024,
      uploadPartBytes: 8 * 1024 * 1024,
      s3ForcePathStyle: false,
      requestTimeoutMs: 10_000,
      requestTotalTimeoutMs: 30_000,
      maxResponseBytes: 64 * 1024 * 1024,
    });
    expect(config.apiKey).toEqual({ kind: 'value', value: 'sk_test_x' });
  });

  it('names every bad variable and its rule in one error', () => {
    const error = errorOf({
      ...minimal,
      EXPORT_CONCURRENCY: '0',
      EXPORT_MAX_RPS: '0',
      EXPORT_PREFIX: '/leading',
    });

    expect(error.issues).toEqual([
      'EXPORT_PREFIX must be key segments separated by "/", without leading or trailing "/"',
      'EXPORT_CONCURRENCY must be at least 1',
      'EXPORT_MAX_RPS must be greater than 0',
    ]);
    expect(error.message).toContain('EXPORT_CONCURRENCY must be at least 1');
  });

  it('requires the table and bucket names', () => {
    expect(errorOf({ MOONKEY_API_KEY: 'k' }).issues).toEqual([
      'USERS_TABLE_NAME is required',
      'EXPORT_BUCKET_NAME is required',
    ]);
  });

  it('requires exactly one of MOONKEY_API_KEY and MOONKEY_API_KEY_SECRET_ARN', () => {
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey-AbCdEf';
    const { MOONKEY_API_KEY: _, ...withoutKey } = minimal;

    expect(errorOf(withoutKey).message).toContain(
      'exactly one of MOONKEY_API_KEY or MOONKEY_API_KEY_SECRET_ARN',
    );
    expect(errorOf({ ...minimal, MOONKEY_API_KEY_SECRET_ARN: arn }).message).toContain('(found 2)');
    expect(parseConfig({ ...withoutKey, MOONKEY_API_KEY_SECRET_ARN: arn }).apiKey).toEqual({
      kind: 'secret',
      secretArn: arn,
    });
    expect(errorOf({ ...withoutKey, MOONKEY_API_KEY_SECRET_ARN: 'moonkey' }).issues).toEqual([
      'MOONKEY_API_KEY_SECRET_ARN must be a Secrets Manager secret ARN',
    ]);
  });

  it('treats empty values as unset, as CloudFormation and shells produce them', () => {
    expect(parseConfig({ ...minimal, EXPORT_MAX_RPS: '', EXPORT_PREFIX: '  ' })).toMatchObject({
      maxRps: undefined,
      prefix: 'moonkey',
    });
  });

  it('reads the failed-users tolerance as a count or a percentage', () => {
    expect(parseConfig({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: '25' }).failedUsersTolerance).toEqual({
      kind: 'count',
      value: 25,
    });
    expect(parseConfig({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: '0.5%' }).failedUsersTolerance).toEqual({
      kind: 'percent',
      value: 0.5,
    });
    expect(errorOf({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: 'some' }).issues[0]).toMatch(
      /^EXPORT_FAILED_USERS_TOLERANCE must be a count/,
    );
    expect(errorOf({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: '150%' }).issues[0]).toBe(
      'EXPORT_FAILED_USERS_TOLERANCE a percentage must be at most 100%',
    );
  });

  it('reads the not-found-users tolerance as a count or a percentage, and names the variable when it is bad', () => {
    expect(
      parseConfig({ ...minimal, EXPORT_NOT_FOUND_USERS_TOLERANCE: '200' }).notFoundUsersTolerance,
    ).toEqual({ kind: 'count', value: 200 });
    expect(
      parseConfig({ ...minimal, EXPORT_NOT_FOUND_USERS_TOLERANCE: '2.5%' }).notFoundUsersTolerance,
    ).toEqual({ kind: 'percent', value: 2.5 });
    expect(errorOf({ ...minimal, EXPORT_NOT_FOUND_USERS_TOLERANCE: 'half' }).issues).toEqual([
      'EXPORT_NOT_FOUND_USERS_TOLERANCE must be a count like "10" or a percentage like "0.5%"',
    ]);
    expect(errorOf({ ...minimal, EXPORT_NOT_FOUND_USERS_TOLERANCE: '-1' }).issues).toEqual([
      'EXPORT_NOT_FOUND_USERS_TOLERANCE must be a count like "10" or a percentage like "0.5%"',
    ]);
    expect(errorOf({ ...minimal, EXPORT_NOT_FOUND_USERS_TOLERANCE: '101%' }).issues).toEqual([
      'EXPORT_NOT_FOUND_USERS_TOLERANCE a percentage must be at most 100%',
    ]);
  });

  it('refuses S3 part sizes S3 itself would refuse', () => {
    expect(errorOf({ ...minimal, EXPORT_UPLOAD_PART_BYTES: String(1024 * 1024) }).issues[0]).toBe(
      'EXPORT_UPLOAD_PART_BYTES must be at least 5242880',
    );
  });

  it('refuses a maximum retry delay below the base delay, and accepts them equal', () => {
    expect(
      errorOf({ ...minimal, EXPORT_RETRY_BASE_DELAY_MS: '500', EXPORT_RETRY_MAX_DELAY_MS: '499' }).issues,
    ).toEqual(['EXPORT_RETRY_MAX_DELAY_MS must be at least EXPORT_RETRY_BASE_DELAY_MS']);
    expect(
      parseConfig({ ...minimal, EXPORT_RETRY_BASE_DELAY_MS: '500', EXPORT_RETRY_MAX_DELAY_MS: '500' }),
    ).toMatchObject({ retryBaseDelayMs: 500, retryMaxDelayMs: 500 });
  });

  it('refuses more scan segments than EXPORT_CONCURRENCY, naming both, and accepts them equal or auto', () => {
    expect(errorOf({ ...minimal, EXPORT_SCAN_SEGMENTS: '4', EXPORT_CONCURRENCY: '2' }).issues).toEqual([
      'EXPORT_SCAN_SEGMENTS must be at most EXPORT_CONCURRENCY (2): EXPORT_CONCURRENCY limits the calls in flight of the whole run and every segment needs at least one (got 4 segments)',
    ]);
    // The default concurrency (16) holds too.
    expect(errorOf({ ...minimal, EXPORT_SCAN_SEGMENTS: '17' }).issues[0]).toMatch(
      /^EXPORT_SCAN_SEGMENTS must be at most EXPORT_CONCURRENCY \(16\)/,
    );
    expect(parseConfig({ ...minimal, EXPORT_SCAN_SEGMENTS: '2', EXPORT_CONCURRENCY: '2' })).toMatchObject({
      scanSegments: 2,
      concurrency: 2,
    });
    expect(parseConfig({ ...minimal, EXPORT_SCAN_SEGMENTS: 'auto', EXPORT_CONCURRENCY: '1' })).toMatchObject({
      scanSegments: 'auto',
    });
  });

  it('refuses an API URL that is not http(s)', () => {
    expect(errorOf({ ...minimal, MOONKEY_API_URL: 'ftp://moonkey' }).issues[0]).toBe(
      'MOONKEY_API_URL must be an http(s) URL',
    );
  });

  it.each([
    ['EXPORT_CONCURRENCY', '0x10'],
    ['EXPORT_CONCURRENCY', '1e3'],
    ['EXPORT_CONCURRENCY', '0b11'],
    ['EXPORT_CONCURRENCY', '+16'],
    ['EXPORT_CONCURRENCY', '16.0'],
    ['EXPORT_REQUEST_TIMEOUT_MS', '1e4'],
  ])('refuses %s=%s: a whole number must be written in decimal digits', (name, value) => {
    expect(errorOf({ ...minimal, [name]: value }).issues).toEqual([
      `${name} must be a whole number in decimal digits (like 16)`,
    ]);
  });

  it('reads decimal digits as before, and refuses an exponent or hex rate', () => {
    expect(parseConfig({ ...minimal, EXPORT_CONCURRENCY: '0016', EXPORT_MAX_RPS: '2.5' })).toMatchObject({
      concurrency: 16,
      maxRps: 2.5,
    });
    expect(errorOf({ ...minimal, EXPORT_MAX_RPS: '1e3' }).issues).toEqual([
      'EXPORT_MAX_RPS must be a decimal number (like 50 or 2.5)',
    ]);
    expect(errorOf({ ...minimal, EXPORT_MAX_RPS: '0x10' }).issues).toEqual([
      'EXPORT_MAX_RPS must be a decimal number (like 50 or 2.5)',
    ]);
  });

  it.each(['../../x', '..', '.', 'a/./b', 'a/..', 'exports/../../etc'])(
    'refuses EXPORT_PREFIX=%s: "." and ".." segments',
    (prefix) => {
      expect(errorOf({ ...minimal, EXPORT_PREFIX: prefix }).issues).toEqual([
        'EXPORT_PREFIX must not contain "." or ".." segments',
      ]);
    },
  );

  it('keeps prefixes whose segments merely contain dots', () => {
    expect(parseConfig({ ...minimal, EXPORT_PREFIX: 'v1.2/...x/.hidden' }).prefix).toBe('v1.2/...x/.hidden');
  });

  it.each([
    'https://api.moonkey.fun/?tenant=a',
    'https://api.moonkey.fun/v2?x',
    'https://api.moonkey.fun/#frag',
    'https://api.moonkey.fun?',
  ])('refuses MOONKEY_API_URL=%s: a query or fragment would be dropped', (url) => {
    expect(errorOf({ ...minimal, MOONKEY_API_URL: url }).issues).toEqual([
      'MOONKEY_API_URL must not have a query string or fragment (they would be silently dropped)',
    ]);
  });

  it('refuses credentials in MOONKEY_API_URL and keeps a base path', () => {
    expect(errorOf({ ...minimal, MOONKEY_API_URL: 'https://user:pw@api.moonkey.fun' }).issues).toEqual([
      'MOONKEY_API_URL must not carry credentials',
    ]);
    expect(parseConfig({ ...minimal, MOONKEY_API_URL: 'https://gw.example.com/moonkey/' }).apiUrl).toBe(
      'https://gw.example.com/moonkey',
    );
  });

  it('requires the total request time to cover the idle timeout', () => {
    expect(
      errorOf({ ...minimal, EXPORT_REQUEST_TIMEOUT_MS: '20000', EXPORT_REQUEST_TOTAL_TIMEOUT_MS: '10000' })
        .issues,
    ).toEqual([
      'EXPORT_REQUEST_TOTAL_TIMEOUT_MS must be at least EXPORT_REQUEST_TIMEOUT_MS (it bounds the whole attempt, the other one idle time)',
    ]);
  });

  it('keeps the API key out of the settings recorded in manifests', () => {
    const settings = effectiveSettings(parseConfig(minimal));

    expect(JSON.stringify(settings)).not.toContain('sk_test_x');
    expect(settings.apiKey).toBe('(from MOONKEY_API_KEY)');
  });
});

describe('parseConfig: PII copies', () => {
  const KEY = 'k'.repeat(32);

  it('writes the raw copy only by default, with the pseudonymize preset ready and no key needed', () => {
    expect(parseConfig(minimal).pii).toEqual({
      copies: 'raw',
      policy: PII_PRESETS.pseudonymize,
      key: undefined,
    });
  });

  it('reads the copies mode, a preset or the per-field form, and the key source', () => {
    expect(
      parseConfig({ ...minimal, EXPORT_COPIES: 'both', EXPORT_PII_POLICY: 'analytics', EXPORT_PII_KEY: KEY })
        .pii,
    ).toEqual({
      copies: 'both',
      policy: PII_PRESETS.analytics,
      key: { kind: 'value', value: KEY },
    });
    const arn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pii-AbCdEf';
    const config = parseConfig({
      ...minimal,
      EXPORT_COPIES: 'pseudonymized',
      EXPORT_PII_POLICY: 'minimal,user_agent=keep',
      EXPORT_PII_KEY_SECRET_ARN: arn,
    });
    expect(config.pii.key).toEqual({ kind: 'secret', secretArn: arn });
    expect(config.pii.policy.user_agent).toEqual({ kind: 'keep' });
  });

  it('names the variable and the rule for a bad mode or policy', () => {
    expect(errorOf({ ...minimal, EXPORT_COPIES: 'hashed' }).issues).toEqual([
      'EXPORT_COPIES must be raw, pseudonymized or both',
    ]);
    expect(errorOf({ ...minimal, EXPORT_PII_POLICY: 'analytics,email=truncate' }).issues).toEqual([
      'EXPORT_PII_POLICY email=truncate: only ip can be truncated',
    ]);
  });

  it('requires exactly one key source when a pseudonymized copy is written, and a long enough key', () => {
    expect(errorOf({ ...minimal, EXPORT_COPIES: 'both' }).issues).toEqual([
      'EXPORT_PII_KEY_SECRET_ARN exactly one of EXPORT_PII_KEY or EXPORT_PII_KEY_SECRET_ARN must be set when EXPORT_COPIES=both (found 0)',
    ]);
    expect(
      errorOf({
        ...minimal,
        EXPORT_COPIES: 'pseudonymized',
        EXPORT_PII_KEY: KEY,
        EXPORT_PII_KEY_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pii-AbCdEf',
      }).issues,
    ).toEqual([
      'EXPORT_PII_KEY_SECRET_ARN exactly one of EXPORT_PII_KEY or EXPORT_PII_KEY_SECRET_ARN must be set when EXPORT_COPIES=pseudonymized (found 2)',
    ]);
    expect(errorOf({ ...minimal, EXPORT_COPIES: 'both', EXPORT_PII_KEY: 'short' }).issues).toEqual([
      'EXPORT_PII_KEY must be at least 32 characters',
    ]);
    expect(errorOf({ ...minimal, EXPORT_PII_KEY_SECRET_ARN: 'pii' }).issues).toEqual([
      'EXPORT_PII_KEY_SECRET_ARN must be a Secrets Manager secret ARN',
    ]);
  });

  it('keeps the PII key out of the settings recorded in manifests and logs', () => {
    const settings = effectiveSettings(
      parseConfig({ ...minimal, EXPORT_COPIES: 'both', EXPORT_PII_KEY: KEY }),
    );
    expect(JSON.stringify(settings)).not.toContain(KEY);
    expect(settings.pii).toEqual({
      copies: 'both',
      policy:
        'phone_number=hash,email=hash,wallet_public_address=hash,provider_subject=hash,ip=hash,user_agent=hash',
      key: '(from EXPORT_PII_KEY)',
    });
    expect((effectiveSettings(parseConfig(minimal)).pii as { key: unknown }).key).toBeNull();
  });
});
