import { effectiveSettings, loadConfig, parseConfig } from '../../../lambda/core/config';
import { ConfigError } from '../../../lambda/core/errors';
import { MAX_SEGMENTS } from '../../../lambda/core/facts';
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
    expect(error.message).toBe(
      'Invalid configuration: EXPORT_PREFIX must be key segments separated by "/", without leading or trailing "/"; EXPORT_CONCURRENCY must be at least 1; EXPORT_MAX_RPS must be greater than 0',
    );
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

    expect(errorOf(withoutKey).issues).toEqual([
      'MOONKEY_API_KEY exactly one of MOONKEY_API_KEY or MOONKEY_API_KEY_SECRET_ARN must be set (found 0)',
    ]);
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

describe('parseConfig: each whole-number variable, its bounds and its default', () => {
  const MIB = 1024 * 1024;
  // [variable, Config field, min, max, default, what a bound needs of the other variables]
  const rows: [string, string, number, number, number, Record<string, string>][] = [
    ['EXPORT_CONCURRENCY', 'concurrency', 1, 2048, 16, {}],
    [
      'EXPORT_REQUEST_TIMEOUT_MS',
      'requestTimeoutMs',
      100,
      300_000,
      10_000,
      { EXPORT_REQUEST_TOTAL_TIMEOUT_MS: '900000' },
    ],
    [
      'EXPORT_REQUEST_TOTAL_TIMEOUT_MS',
      'requestTotalTimeoutMs',
      100,
      900_000,
      30_000,
      { EXPORT_REQUEST_TIMEOUT_MS: '100' },
    ],
    ['EXPORT_MAX_RESPONSE_BYTES', 'maxResponseBytes', 1024, 1024 * MIB, 64 * MIB, {}],
    ['EXPORT_MAX_ATTEMPTS', 'maxAttempts', 1, 20, 5, {}],
    [
      'EXPORT_RETRY_BASE_DELAY_MS',
      'retryBaseDelayMs',
      1,
      60_000,
      200,
      { EXPORT_RETRY_MAX_DELAY_MS: '900000' },
    ],
    ['EXPORT_RETRY_MAX_DELAY_MS', 'retryMaxDelayMs', 1, 900_000, 20_000, { EXPORT_RETRY_BASE_DELAY_MS: '1' }],
    ['EXPORT_DYNAMODB_MAX_ATTEMPTS', 'dynamodbMaxAttempts', 1, 30, 10, {}],
    ['EXPORT_SCAN_PAGE_SIZE', 'scanPageSize', 1, 10_000, 1000, {}],
    ['EXPORT_TARGET_FILE_BYTES', 'targetFileBytes', 1024, 5 * 1024 * MIB, 128 * MIB, {}],
    ['EXPORT_UPLOAD_PART_BYTES', 'uploadPartBytes', 5 * MIB, 512 * MIB, 8 * MIB, {}],
    ['EXPORT_GZIP_LEVEL', 'gzipLevel', 1, 9, 6, {}],
    ['EXPORT_DEADLINE_MARGIN_MS', 'deadlineMarginMs', 0, 600_000, 60_000, {}],
    ['EXPORT_PROGRESS_INTERVAL_MS', 'progressIntervalMs', 100, 3_600_000, 5_000, {}],
  ];

  it.each(rows)('%s (%s): from %d to %d, %d when unset', (name, field, min, max, fallback, others) => {
    const config = (value: number) => parseConfig({ ...minimal, ...others, [name]: String(value) });

    expect(parseConfig(minimal)).toHaveProperty(field, fallback);
    expect(config(min)).toHaveProperty(field, min);
    expect(config(max)).toHaveProperty(field, max);
    expect(errorOf({ ...minimal, ...others, [name]: String(max + 1) }).issues).toEqual([
      `${name} must be at most ${max}`,
    ]);
    // The cross-field rules still see the refused value, so a second issue may follow this one.
    expect(errorOf({ ...minimal, ...others, [name]: String(min - 1) }).issues[0]).toBe(
      min === 0
        ? `${name} must be a whole number in decimal digits (like 16)`
        : `${name} must be at least ${min}`,
    );
  });
});

describe('parseConfig: EXPORT_SCAN_SEGMENTS', () => {
  const wide = { ...minimal, EXPORT_CONCURRENCY: '2048' };

  it('refuses more segments than an inline Map runs at once (MAX_SEGMENTS), whatever EXPORT_CONCURRENCY allows', () => {
    expect(parseConfig({ ...wide, EXPORT_SCAN_SEGMENTS: String(MAX_SEGMENTS) }).scanSegments).toBe(
      MAX_SEGMENTS,
    );
    expect(errorOf({ ...wide, EXPORT_SCAN_SEGMENTS: String(MAX_SEGMENTS + 1) }).issues).toEqual([
      `EXPORT_SCAN_SEGMENTS must be at most ${MAX_SEGMENTS} (an inline Map runs at most ${MAX_SEGMENTS} segments at once)`,
    ]);
  });

  it('refuses zero segments and names the accepted forms for anything else', () => {
    expect(parseConfig({ ...minimal, EXPORT_SCAN_SEGMENTS: '1' }).scanSegments).toBe(1);
    expect(errorOf({ ...minimal, EXPORT_SCAN_SEGMENTS: '0' }).issues).toEqual([
      'EXPORT_SCAN_SEGMENTS must be at least 1',
    ]);
    for (const value of ['many', 'AUTO', '-1', '2.5']) {
      expect(errorOf({ ...minimal, EXPORT_SCAN_SEGMENTS: value }).issues).toEqual([
        `EXPORT_SCAN_SEGMENTS must be auto or a whole number of segments from 1 to ${MAX_SEGMENTS}`,
      ]);
    }
  });
});

describe('parseConfig: switches, names and the other defaults', () => {
  it.each([
    ['EXPORT_ADAPTIVE_CONCURRENCY', 'adaptiveConcurrency', true],
    ['S3_FORCE_PATH_STYLE', 's3ForcePathStyle', false],
    ['METRICS_ENABLED', 'metricsEnabled', true],
  ] as const)('%s (%s): true, false, 1 or 0, %s when unset', (name, field, fallback) => {
    const value = (v: string) => parseConfig({ ...minimal, [name]: v })[field];

    expect(parseConfig(minimal)[field]).toBe(fallback);
    expect([value('true'), value('1'), value('false'), value('0')]).toEqual([true, true, false, false]);
    expect(errorOf({ ...minimal, [name]: 'yes' }).issues).toEqual([`${name} must be true or false`]);
  });

  it('reads LOG_LEVEL, INFO when unset, and lists the levels for a bad one', () => {
    expect(parseConfig(minimal).logLevel).toBe('INFO');
    for (const level of ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT', 'CRITICAL']) {
      expect(parseConfig({ ...minimal, LOG_LEVEL: level }).logLevel).toBe(level);
    }
    expect(errorOf({ ...minimal, LOG_LEVEL: 'info' }).issues).toEqual([
      'LOG_LEVEL must be one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL, SILENT',
    ]);
  });

  it('keeps the names it is given and defaults the metrics namespace and the rejected-items tolerance', () => {
    const config = parseConfig({
      ...minimal,
      USER_ID_ATTRIBUTE: 'uid',
      METRICS_NAMESPACE: 'Exports/Test',
      EXPORT_MAX_RPS: '12',
    });

    expect(config).toMatchObject({
      usersTableName: 'users',
      bucket: 'my-exports',
      userIdAttribute: 'uid',
      metricsNamespace: 'Exports/Test',
      maxRps: 12,
    });
    expect(parseConfig(minimal)).toMatchObject({
      metricsNamespace: 'MoonKeySessionExport',
      adaptiveConcurrency: true,
      rejectedItemsTolerance: { kind: 'percent', value: 1 },
    });
    expect(parseConfig({ ...minimal, EXPORT_REJECTED_ITEMS_TOLERANCE: '3' }).rejectedItemsTolerance).toEqual({
      kind: 'count',
      value: 3,
    });
  });

  it('trims the values it reads, as a template or shell may leave a space or newline around them', () => {
    expect(parseConfig({ ...minimal, EXPORT_CONCURRENCY: ' 8\n', EXPORT_PREFIX: ' exports ' })).toMatchObject(
      {
        concurrency: 8,
        prefix: 'exports',
      },
    );
  });

  it('refuses a table name DynamoDB would refuse as too short, and accepts three characters', () => {
    expect(errorOf({ ...minimal, USERS_TABLE_NAME: 'ab' }).issues).toEqual([
      'USERS_TABLE_NAME must be a DynamoDB table name',
    ]);
    expect(parseConfig({ ...minimal, USERS_TABLE_NAME: 'abc' }).usersTableName).toBe('abc');
  });

  it.each(['My-Exports', 'ab', '-exports', 'exports-', 'exports_1', `${'b'.repeat(64)}`, 'x/exports'])(
    'refuses EXPORT_BUCKET_NAME=%s',
    (bucket) => {
      expect(errorOf({ ...minimal, EXPORT_BUCKET_NAME: bucket }).issues).toEqual([
        'EXPORT_BUCKET_NAME must be an S3 bucket name',
      ]);
    },
  );

  it.each(['abc', 'my.exports-2', `${'b'.repeat(63)}`])('accepts EXPORT_BUCKET_NAME=%s', (bucket) => {
    expect(parseConfig({ ...minimal, EXPORT_BUCKET_NAME: bucket }).bucket).toBe(bucket);
  });
});

describe('parseConfig: URLs, ARNs and prefixes', () => {
  it('accepts http and https API URLs and refuses other schemes that merely contain them', () => {
    expect(parseConfig({ ...minimal, MOONKEY_API_URL: 'http://127.0.0.1:8080' }).apiUrl).toBe(
      'http://127.0.0.1:8080',
    );
    expect(parseConfig({ ...minimal, MOONKEY_API_URL: 'https://api.example.com' }).apiUrl).toBe(
      'https://api.example.com',
    );
    for (const url of ['xhttp://api.example.com', 'httpsx://api.example.com', 'wss://api.example.com']) {
      expect(errorOf({ ...minimal, MOONKEY_API_URL: url }).issues).toEqual([
        'MOONKEY_API_URL must be an http(s) URL',
      ]);
    }
  });

  it('refuses credentials over http too, and keeps an @ in the path', () => {
    expect(errorOf({ ...minimal, MOONKEY_API_URL: 'http://user@api.example.com' }).issues).toEqual([
      'MOONKEY_API_URL must not carry credentials',
    ]);
    expect(parseConfig({ ...minimal, MOONKEY_API_URL: 'https://api.example.com/@team' }).apiUrl).toBe(
      'https://api.example.com/@team',
    );
    // A gateway path that carries another URL is a path, not credentials.
    expect(
      parseConfig({ ...minimal, MOONKEY_API_URL: 'https://gw.example.com/to/http://team@api.example.com' })
        .apiUrl,
    ).toBe('https://gw.example.com/to/http://team@api.example.com');
  });

  it('strips every trailing slash of the API URL', () => {
    expect(parseConfig({ ...minimal, MOONKEY_API_URL: 'https://gw.example.com/moonkey///' }).apiUrl).toBe(
      'https://gw.example.com/moonkey',
    );
  });

  it.each([
    'arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:moonkey-AbCdEf',
    'arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:moonkey-AbCdEf',
  ])('accepts a secret ARN of another partition: %s', (arn) => {
    const { MOONKEY_API_KEY: _, ...withoutKey } = minimal;

    expect(parseConfig({ ...withoutKey, MOONKEY_API_KEY_SECRET_ARN: arn }).apiKey).toEqual({
      kind: 'secret',
      secretArn: arn,
    });
  });

  it.each([
    'xarn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey',
    'arn:aws:secretsmanager:eu-west-1:12345678901:secret:moonkey',
    'arn:aws:secretsmanager:eu-west-1:1234567890123:secret:moonkey',
    'arn:aws:secretsmanager::123456789012:secret:moonkey',
    'arn:aws:secretsmanager:eu-west-1:123456789012:secret:',
    'arn:aws:ssm:eu-west-1:123456789012:parameter/moonkey',
  ])('refuses MOONKEY_API_KEY_SECRET_ARN=%s', (arn) => {
    const { MOONKEY_API_KEY: _, ...withoutKey } = minimal;

    expect(errorOf({ ...withoutKey, MOONKEY_API_KEY_SECRET_ARN: arn }).issues).toEqual([
      'MOONKEY_API_KEY_SECRET_ARN must be a Secrets Manager secret ARN',
    ]);
  });

  it.each(['a//b', 'a/', 'a b', 'exports/ü'])('refuses EXPORT_PREFIX=%s: not key segments', (prefix) => {
    expect(errorOf({ ...minimal, EXPORT_PREFIX: prefix }).issues).toEqual([
      'EXPORT_PREFIX must be key segments separated by "/", without leading or trailing "/"',
    ]);
  });

  it("accepts a prefix of several segments using S3's safe characters", () => {
    expect(parseConfig({ ...minimal, EXPORT_PREFIX: "team_A/exp-1/(v2)/it's*!" }).prefix).toBe(
      "team_A/exp-1/(v2)/it's*!",
    );
  });
});

describe('parseConfig: tolerances and rates', () => {
  it.each(['1.5', '%', '5%%', 'x5%', '5%x', '.5%', '1x5%'])(
    'refuses EXPORT_FAILED_USERS_TOLERANCE=%s',
    (value) => {
      expect(errorOf({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: value }).issues).toEqual([
        'EXPORT_FAILED_USERS_TOLERANCE must be a count like "10" or a percentage like "0.5%"',
      ]);
    },
  );

  it('accepts a percentage of exactly 100% and a whole percentage', () => {
    expect(parseConfig({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: '100%' }).failedUsersTolerance).toEqual({
      kind: 'percent',
      value: 100,
    });
    expect(parseConfig({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: '7%' }).failedUsersTolerance).toEqual({
      kind: 'percent',
      value: 7,
    });
    expect(parseConfig({ ...minimal, EXPORT_FAILED_USERS_TOLERANCE: '1000' }).failedUsersTolerance).toEqual({
      kind: 'count',
      value: 1000,
    });
  });

  it.each(['2.', '.5', '2.5.1', 'x2', '2x', '-2', '2x5'])('refuses EXPORT_MAX_RPS=%s', (value) => {
    expect(errorOf({ ...minimal, EXPORT_MAX_RPS: value }).issues).toEqual([
      'EXPORT_MAX_RPS must be a decimal number (like 50 or 2.5)',
    ]);
  });

  it.each(['16x', 'x16', '1 6'])('refuses EXPORT_CONCURRENCY=%s: not decimal digits only', (value) => {
    expect(errorOf({ ...minimal, EXPORT_CONCURRENCY: value }).issues).toEqual([
      'EXPORT_CONCURRENCY must be a whole number in decimal digits (like 16)',
    ]);
  });
});

describe('loadConfig', () => {
  const saved = process.env;
  afterEach(() => {
    process.env = saved;
  });

  it('reads process.env, with the defaults it is given only where the environment says nothing', () => {
    process.env = { ...minimal, LOG_LEVEL: 'DEBUG', EXPORT_PREFIX: '' };

    expect(loadConfig({ LOG_LEVEL: 'WARN', EXPORT_GZIP_LEVEL: '2' })).toMatchObject({
      usersTableName: 'users',
      logLevel: 'DEBUG',
      gzipLevel: 2,
      prefix: 'moonkey',
    });
    expect(loadConfig().logLevel).toBe('DEBUG');
  });
});

describe('effectiveSettings', () => {
  const apiArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:moonkey-AbCdEf';
  const piiArn = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:pii-AbCdEf';

  it('records the secret ARNs the keys come from, and every other setting as parsed', () => {
    const { MOONKEY_API_KEY: _, ...withoutKey } = minimal;
    const config = parseConfig({
      ...withoutKey,
      MOONKEY_API_KEY_SECRET_ARN: apiArn,
      EXPORT_COPIES: 'both',
      EXPORT_PII_KEY_SECRET_ARN: piiArn,
    });
    const settings = effectiveSettings(config);

    expect(settings).toMatchObject({ apiKey: { secretArn: apiArn }, concurrency: 16, bucket: 'my-exports' });
    expect(settings.pii).toMatchObject({ copies: 'both', key: { secretArn: piiArn } });
  });
});
