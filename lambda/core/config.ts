import { z } from 'zod';
import { describePolicy, PII_PRESETS, type PiiPolicy, parsePolicy } from '../pii/pii-policy';
import { ConfigError } from './errors';
import {
  DEFAULT_API_URL,
  DEFAULT_CONCURRENCY,
  DEFAULT_EXPORT_PREFIX,
  DEFAULT_METRICS_NAMESPACE,
  DEFAULT_USER_ID_ATTRIBUTE,
  MAX_SEGMENTS,
} from './facts';

const MIB = 1024 * 1024;

/**
 * Plain decimal digits only. `Number()` (and so `z.coerce.number()`) also reads "0x10", "1e3",
 * "0b11" and " 12 ", which nobody means in a setting; refusing them keeps a typo from turning
 * into a surprising value.
 */
const int = (min: number, max: number, whyMax?: string) =>
  z
    .string()
    .regex(/^\d+$/, { error: 'must be a whole number in decimal digits (like 16)' })
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, { error: `must be at least ${min}` })
        .max(max, { error: `must be at most ${max}${whyMax === undefined ? '' : ` (${whyMax})`}` }),
    );

/** A positive decimal like "12" or "2.5"; no exponent, hex or sign. */
const positiveDecimal = z
  .string()
  .regex(/^\d+(\.\d+)?$/, { error: 'must be a decimal number (like 50 or 2.5)' })
  .transform(Number)
  .pipe(z.number().positive({ error: 'must be greater than 0' }));

/** Key segments; "." and ".." are refused because S3 keeps them literally while every tool that maps keys to paths resolves them. */
const keyPrefix = z
  .string()
  .regex(/^[A-Za-z0-9!_.*'()-]+(\/[A-Za-z0-9!_.*'()-]+)*$/, {
    error: 'must be key segments separated by "/", without leading or trailing "/"',
  })
  .refine((v) => v.split('/').every((segment) => segment !== '.' && segment !== '..'), {
    error: 'must not contain "." or ".." segments',
  });

/** The API's base URL. A query or fragment would be dropped when paths are appended, so refuse it. */
const apiUrl = z
  .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
  .refine((v) => !v.includes('?') && !v.includes('#'), {
    error: 'must not have a query string or fragment (they would be silently dropped)',
  })
  .refine((v) => !/^https?:\/\/[^/]*@/.test(v), { error: 'must not carry credentials' });

const bool = z
  .enum(['true', 'false', '1', '0'], { error: 'must be true or false' })
  .transform((v) => v === 'true' || v === '1');

/**
 * "12" means at most 12 failed users; "0.5%" means at most 0.5% of the users processed.
 * Kept as a rule, not a number, because the user count is only known at the end of the scan.
 */
const tolerance = z
  .string()
  .regex(/^(\d+|\d+(\.\d+)?%)$/, { error: 'must be a count like "10" or a percentage like "0.5%"' })
  .transform((v) =>
    v.endsWith('%')
      ? ({ kind: 'percent', value: Number(v.slice(0, -1)) } as const)
      : ({ kind: 'count', value: Number(v) } as const),
  )
  .refine((t) => t.kind === 'count' || t.value <= 100, { error: 'a percentage must be at most 100%' });

/** A preset name or the per-field form (pii/pii-policy.ts); the error is the parser's own. */
const piiPolicy = z.string().transform((v, ctx): PiiPolicy => {
  const result = parsePolicy(v);
  if (result.ok) return result.policy;
  ctx.addIssue({ code: 'custom', message: result.error });
  return z.NEVER;
});

/** HMAC keys shorter than the hash's own 32 bytes are weaker than the hash. */
export const PII_KEY_MIN_CHARS = 32;

const secretArn = z.string().regex(/^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/, {
  error: 'must be a Secrets Manager secret ARN',
});

/**
 * Every environment variable the job reads, with its default and rule. This is the only place
 * that reads `process.env` (see `loadConfig`); everything else receives a `Config`.
 * The README's configuration table mirrors this schema.
 */
export const envShape = z.object({
  USERS_TABLE_NAME: z.string({ error: 'is required' }).min(3, { error: 'must be a DynamoDB table name' }),
  USER_ID_ATTRIBUTE: z.string().min(1).default(DEFAULT_USER_ID_ATTRIBUTE),
  EXPORT_BUCKET_NAME: z
    .string({ error: 'is required' })
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, { error: 'must be an S3 bucket name' }),
  EXPORT_PREFIX: keyPrefix.default(DEFAULT_EXPORT_PREFIX),
  MOONKEY_API_URL: apiUrl.default(DEFAULT_API_URL),
  MOONKEY_API_KEY: z.string().min(1, { error: 'must not be empty' }).optional(),
  MOONKEY_API_KEY_SECRET_ARN: secretArn.optional(),
  // Raw by default: what existing deployments and their readers already rely on.
  EXPORT_COPIES: z
    .enum(['raw', 'pseudonymized', 'both'], { error: 'must be raw, pseudonymized or both' })
    .default('raw'),
  EXPORT_PII_POLICY: piiPolicy.default(() => PII_PRESETS.pseudonymize),
  EXPORT_PII_KEY: z
    .string()
    .min(PII_KEY_MIN_CHARS, { error: `must be at least ${PII_KEY_MIN_CHARS} characters` })
    .optional(),
  EXPORT_PII_KEY_SECRET_ARN: secretArn.optional(),
  EXPORT_CONCURRENCY: int(1, 2048).default(DEFAULT_CONCURRENCY),
  EXPORT_MAX_RPS: positiveDecimal.optional(),
  // On by default: inert until the API answers 429 (see lambda/flow/adaptive-concurrency.ts).
  EXPORT_ADAPTIVE_CONCURRENCY: bool.default(true),
  EXPORT_REQUEST_TIMEOUT_MS: int(100, 300_000).default(10_000),
  // The idle timeout above never fires on a body trickling in byte by byte: this bounds the whole attempt.
  EXPORT_REQUEST_TOTAL_TIMEOUT_MS: int(100, 900_000).default(30_000),
  // 64 MiB: a user with 100,000 sessions is a 44 MB body; a 200 MB one took the function's RSS to 955 MB.
  EXPORT_MAX_RESPONSE_BYTES: int(1024, 1024 * MIB).default(64 * MIB),
  EXPORT_MAX_ATTEMPTS: int(1, 20).default(5),
  EXPORT_RETRY_BASE_DELAY_MS: int(1, 60_000).default(200),
  EXPORT_RETRY_MAX_DELAY_MS: int(1, 900_000).default(20_000),
  // `auto`: from the table's size (DescribeTable's item count, run/plan-phase.ts), 1 to
  // mostAutoSegments(EXPORT_CONCURRENCY) segments (core/facts.ts).
  // The stack refuses more than MAX_SEGMENTS too (infra/validate-props.ts); this catches a job run
  // with an environment the stack never checked (the CLI, the local runner).
  EXPORT_SCAN_SEGMENTS: z
    .union(
      [
        z.literal('auto'),
        int(1, MAX_SEGMENTS, `an inline Map runs at most ${MAX_SEGMENTS} segments at once`),
      ],
      { error: `must be auto or a whole number of segments from 1 to ${MAX_SEGMENTS}` },
    )
    .default('auto'),
  // The SDK's default (3 attempts in standard mode) gives up after ~2 s of throttling; 10 adaptive
  // attempts wait out ~45 s on average (jittered 0.5 s doubling, capped at 20 s) in a 15-minute job.
  EXPORT_DYNAMODB_MAX_ATTEMPTS: int(1, 30).default(10),
  EXPORT_SCAN_PAGE_SIZE: int(1, 10_000).default(1000),
  EXPORT_FAILED_USERS_TOLERANCE: tolerance.default(() => ({ kind: 'count', value: 0 }) as const),
  // Low on purpose: a few odd items are quarantined and the run commits; most of them means the
  // contract moved and a snapshot committed without them would mislead.
  EXPORT_REJECTED_ITEMS_TOLERANCE: tolerance.default(() => ({ kind: 'percent', value: 1 }) as const),
  // Generous on purpose: users deleted between the scan and their call, or rows a users table keeps
  // for deleted accounts, are normal. Half the users missing is far past that, and far below the
  // ~100% that another app's key or another environment's URL gives (see run/tolerance.ts).
  EXPORT_NOT_FOUND_USERS_TOLERANCE: tolerance.default(() => ({ kind: 'percent', value: 50 }) as const),
  // S3 rejects multipart parts under 5 MiB (except the last); files above 5 GiB cannot be completed in one CopyObject-free part set we size for.
  EXPORT_TARGET_FILE_BYTES: int(1024, 5 * 1024 * MIB).default(128 * MIB),
  EXPORT_UPLOAD_PART_BYTES: int(5 * MIB, 512 * MIB).default(8 * MIB),
  EXPORT_GZIP_LEVEL: int(1, 9).default(6),
  EXPORT_DEADLINE_MARGIN_MS: int(0, 600_000).default(60_000),
  EXPORT_PROGRESS_INTERVAL_MS: int(100, 3_600_000).default(5_000),
  S3_FORCE_PATH_STYLE: bool.default(false),
  LOG_LEVEL: z
    .enum(['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT', 'CRITICAL'], {
      error: 'must be one of TRACE, DEBUG, INFO, WARN, ERROR, CRITICAL, SILENT',
    })
    .default('INFO'),
  METRICS_NAMESPACE: z.string().min(1).default(DEFAULT_METRICS_NAMESPACE),
  METRICS_ENABLED: bool.default(true),
});

export const envSchema = envShape.superRefine((env, ctx) => {
  const keys = [env.MOONKEY_API_KEY, env.MOONKEY_API_KEY_SECRET_ARN].filter((v) => v !== undefined);
  if (keys.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      path: ['MOONKEY_API_KEY'],
      message: `exactly one of MOONKEY_API_KEY or MOONKEY_API_KEY_SECRET_ARN must be set (found ${keys.length})`,
    });
  }
  const piiKeys = [env.EXPORT_PII_KEY, env.EXPORT_PII_KEY_SECRET_ARN].filter((v) => v !== undefined);
  if (env.EXPORT_COPIES !== 'raw' && piiKeys.length !== 1) {
    ctx.addIssue({
      code: 'custom',
      path: ['EXPORT_PII_KEY_SECRET_ARN'],
      message: `exactly one of EXPORT_PII_KEY or EXPORT_PII_KEY_SECRET_ARN must be set when EXPORT_COPIES=${env.EXPORT_COPIES} (found ${piiKeys.length})`,
    });
  }
  if (env.EXPORT_REQUEST_TOTAL_TIMEOUT_MS < env.EXPORT_REQUEST_TIMEOUT_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['EXPORT_REQUEST_TOTAL_TIMEOUT_MS'],
      message:
        'must be at least EXPORT_REQUEST_TIMEOUT_MS (it bounds the whole attempt, the other one idle time)',
    });
  }
  if (env.EXPORT_SCAN_SEGMENTS !== 'auto' && env.EXPORT_SCAN_SEGMENTS > env.EXPORT_CONCURRENCY) {
    ctx.addIssue({
      code: 'custom',
      path: ['EXPORT_SCAN_SEGMENTS'],
      message: `must be at most EXPORT_CONCURRENCY (${env.EXPORT_CONCURRENCY}): EXPORT_CONCURRENCY limits the calls in flight of the whole run and every segment needs at least one (got ${env.EXPORT_SCAN_SEGMENTS} segments)`,
    });
  }
  if (env.EXPORT_RETRY_MAX_DELAY_MS < env.EXPORT_RETRY_BASE_DELAY_MS) {
    ctx.addIssue({
      code: 'custom',
      path: ['EXPORT_RETRY_MAX_DELAY_MS'],
      message: 'must be at least EXPORT_RETRY_BASE_DELAY_MS',
    });
  }
});

export type Env = z.infer<typeof envSchema>;

export type ApiKeySource = { kind: 'value'; value: string } | { kind: 'secret'; secretArn: string };

/** Which copies of each record a run writes (docs/pii.md). */
export type ExportCopies = Env['EXPORT_COPIES'];

export interface PiiConfig {
  readonly copies: ExportCopies;
  readonly policy: PiiPolicy;
  /** Where the HMAC key comes from; undefined in `raw` mode, which needs none. */
  readonly key: ApiKeySource | undefined;
}

export interface Config {
  readonly usersTableName: string;
  readonly userIdAttribute: string;
  readonly bucket: string;
  readonly prefix: string;
  readonly apiUrl: string;
  readonly apiKey: ApiKeySource;
  readonly concurrency: number;
  readonly maxRps: number | undefined;
  readonly adaptiveConcurrency: boolean;
  readonly requestTimeoutMs: number;
  readonly requestTotalTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxAttempts: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  readonly scanSegments: number | 'auto';
  readonly dynamodbMaxAttempts: number;
  readonly scanPageSize: number;
  readonly failedUsersTolerance: Env['EXPORT_FAILED_USERS_TOLERANCE'];
  readonly rejectedItemsTolerance: Env['EXPORT_REJECTED_ITEMS_TOLERANCE'];
  readonly notFoundUsersTolerance: Env['EXPORT_NOT_FOUND_USERS_TOLERANCE'];
  readonly targetFileBytes: number;
  readonly uploadPartBytes: number;
  readonly gzipLevel: number;
  readonly deadlineMarginMs: number;
  readonly progressIntervalMs: number;
  readonly s3ForcePathStyle: boolean;
  readonly logLevel: Env['LOG_LEVEL'];
  readonly metricsNamespace: string;
  readonly metricsEnabled: boolean;
  readonly pii: PiiConfig;
}

/** Empty strings count as unset: CloudFormation and shells both produce them for "no value". */
function withoutEmpty(env: Record<string, string | undefined>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(envShape.shape)) {
    const value = env[key];
    if (value !== undefined && value.trim() !== '') out[key] = value.trim();
  }
  return out;
}

/** Parses the environment; throws one ConfigError naming every bad variable and its rule. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = envSchema.safeParse(withoutEmpty(env));
  if (!result.success) {
    const issues = result.error.issues.map(
      (issue) => `${String(issue.path[0] ?? 'environment')} ${issue.message}`,
    );
    throw new ConfigError(`Invalid configuration: ${issues.join('; ')}`, issues);
  }
  const e = result.data;
  return {
    usersTableName: e.USERS_TABLE_NAME,
    userIdAttribute: e.USER_ID_ATTRIBUTE,
    bucket: e.EXPORT_BUCKET_NAME,
    prefix: e.EXPORT_PREFIX,
    apiUrl: e.MOONKEY_API_URL.replace(/\/+$/, ''),
    apiKey:
      e.MOONKEY_API_KEY !== undefined
        ? { kind: 'value', value: e.MOONKEY_API_KEY }
        : { kind: 'secret', secretArn: e.MOONKEY_API_KEY_SECRET_ARN ?? '' },
    concurrency: e.EXPORT_CONCURRENCY,
    maxRps: e.EXPORT_MAX_RPS,
    adaptiveConcurrency: e.EXPORT_ADAPTIVE_CONCURRENCY,
    requestTimeoutMs: e.EXPORT_REQUEST_TIMEOUT_MS,
    requestTotalTimeoutMs: e.EXPORT_REQUEST_TOTAL_TIMEOUT_MS,
    maxResponseBytes: e.EXPORT_MAX_RESPONSE_BYTES,
    maxAttempts: e.EXPORT_MAX_ATTEMPTS,
    retryBaseDelayMs: e.EXPORT_RETRY_BASE_DELAY_MS,
    retryMaxDelayMs: e.EXPORT_RETRY_MAX_DELAY_MS,
    scanSegments: e.EXPORT_SCAN_SEGMENTS,
    dynamodbMaxAttempts: e.EXPORT_DYNAMODB_MAX_ATTEMPTS,
    scanPageSize: e.EXPORT_SCAN_PAGE_SIZE,
    failedUsersTolerance: e.EXPORT_FAILED_USERS_TOLERANCE,
    rejectedItemsTolerance: e.EXPORT_REJECTED_ITEMS_TOLERANCE,
    notFoundUsersTolerance: e.EXPORT_NOT_FOUND_USERS_TOLERANCE,
    targetFileBytes: e.EXPORT_TARGET_FILE_BYTES,
    uploadPartBytes: e.EXPORT_UPLOAD_PART_BYTES,
    gzipLevel: e.EXPORT_GZIP_LEVEL,
    deadlineMarginMs: e.EXPORT_DEADLINE_MARGIN_MS,
    progressIntervalMs: e.EXPORT_PROGRESS_INTERVAL_MS,
    s3ForcePathStyle: e.S3_FORCE_PATH_STYLE,
    logLevel: e.LOG_LEVEL,
    metricsNamespace: e.METRICS_NAMESPACE,
    metricsEnabled: e.METRICS_ENABLED,
    pii: {
      copies: e.EXPORT_COPIES,
      policy: e.EXPORT_PII_POLICY,
      key:
        e.EXPORT_COPIES === 'raw'
          ? undefined
          : e.EXPORT_PII_KEY !== undefined
            ? { kind: 'value', value: e.EXPORT_PII_KEY }
            : { kind: 'secret', secretArn: e.EXPORT_PII_KEY_SECRET_ARN ?? '' },
    },
  };
}

/**
 * The one reader of `process.env` in the job. `defaults` apply only where the environment says
 * nothing (the CLI uses it to log less on a terminal).
 */
export function loadConfig(defaults: Record<string, string> = {}): Config {
  return parseConfig({ ...defaults, ...process.env });
}

/** Settings recorded in the manifest: everything but secrets (the key source says only which kind). */
export function effectiveSettings(config: Config): Record<string, unknown> {
  const { apiKey, pii, ...rest } = config;
  return {
    ...rest,
    apiKey: apiKey.kind === 'secret' ? { secretArn: apiKey.secretArn } : '(from MOONKEY_API_KEY)',
    pii: {
      copies: pii.copies,
      policy: describePolicy(pii.policy),
      key:
        pii.key === undefined
          ? null
          : pii.key.kind === 'secret'
            ? { secretArn: pii.key.secretArn }
            : '(from EXPORT_PII_KEY)',
    },
  };
}
