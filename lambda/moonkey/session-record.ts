import { z } from 'zod';

/**
 * The one schema of a MoonKey session, written from the OpenAPI document
 * (`SessionListItem` of `GET /v1/auth/sessions/list`; a copy lives in test/fixtures/moonkey-openapi.yaml).
 *
 * Everything else derives from it: the response validator, the TypeScript types, the Glue/Athena
 * columns and the fake API's generator. Objects are `looseObject`s so fields MoonKey adds later
 * survive into the snapshot instead of being stripped.
 *
 * Deliberate differences from the document, each because the document contradicts itself or
 * because the alternative would hide sessions from an auditor:
 * - `device_fingerprint.ip` accepts `""`. The document says `minLength: 1`, yet its own example
 *   returns `ip: ""`; a live session with an unknown IP is exactly what an audit must see, so it is
 *   exported as returned (Athena: `ip = ''`), not quarantined.
 * - Times are epoch seconds typed `number` in the document, with no minimum, so any finite number
 *   is accepted, fractional and negative ones included, and exported exactly as sent; Athena
 *   types them `double`, which holds every whole second exactly and works with `from_unixtime`.
 *   Requiring whole non-negative seconds quarantined every session of a contract-valid API
 *   (515 of 515 against `prism mock -d`, which generates both fractions and negatives). An
 *   odd time is for the auditor to see, like an empty IP, not a reason to hide the session.
 * - `uniqueItems` on `factors` is not checked (deep equality of factors carries no audit meaning);
 *   duplicate session ids within one response are (see validate-sessions.ts).
 */
/** zod 4's number is finite: NaN and Infinity are refused (JSON cannot carry them anyway). */
const epochSeconds = z.number();

export const factorMethodSchema = z.looseObject({
  id: z.string().optional(),
  method_id: z.string().min(1),
  method_type: z.string().min(1),
  last_verified_at: epochSeconds,
  phone_number_id: z.string().min(1).optional(),
  phone_number: z.string().min(1).optional(),
  email_id: z.string().optional(),
  email: z.string().optional(),
  wallet_type: z.string().optional(),
  wallet_id: z.string().optional(),
  wallet_public_address: z.string().optional(),
  totp_id: z.string().optional(),
  webauthn_credential_id: z.string().optional(),
  provider_subject: z.string().optional(),
});

export const factorSchema = z.looseObject({
  delivery_channel: z.string().min(1),
  type: z.string().min(1),
  method: factorMethodSchema,
});

export const deviceFingerprintSchema = z.looseObject({
  user_agent: z.string(),
  ip: z.string(),
});

export const sessionListItemSchema = z.looseObject({
  id: z.string().min(1),
  user_id: z.string().min(1),
  started_at: epochSeconds,
  expires_at: epochSeconds,
  last_active_at: epochSeconds,
  factors: z.array(factorSchema).min(1),
  device_fingerprint: deviceFingerprintSchema,
  updated_at: epochSeconds,
  created_at: epochSeconds,
});

/** The envelope only: items are validated one by one so one bad item cannot sink its siblings. */
export const listSessionsResponseSchema = z.looseObject({
  sessions: z.array(z.unknown()),
});

/** Times the job adds to every line: ours, so always whole seconds (Athena `bigint`) whatever MoonKey's times are. */
const jobSeconds = z.number().int().nonnegative();

/** One NDJSON line of a snapshot: the session as MoonKey returned it, plus where it came from. */
export const exportedSessionRecordSchema = sessionListItemSchema.extend({
  snapshot_id: z.string().min(1),
  /** The run of the slot that wrote the line: readers show the lines of the slot's committed run. */
  run_id: z.string().min(1),
  /** The slot's time (the schedule's), the same on every line of a snapshot. */
  snapshot_at: jobSeconds,
  /** When this user's sessions were read: a run may take hours, so rows of one snapshot differ in age. */
  observed_at: jobSeconds,
});

export type SessionListItem = z.infer<typeof sessionListItemSchema>;
export type SessionFactor = z.infer<typeof factorSchema>;
export type ExportedSessionRecord = z.infer<typeof exportedSessionRecordSchema>;

/** Factor types and delivery channels the document lists; the fake API generates every one. */
export const FACTOR_TYPES = ['otp', 'oauth', 'wallet', 'totp', 'webauthn'] as const;
export const DELIVERY_CHANNELS = [
  'sms',
  'email',
  'totp_authenticator',
  'totp_recovery_code',
  'google_oauth',
  'apple_oauth',
  'microsoft_oauth',
  'discord_oauth',
  'okta_oauth',
  'github_oauth',
  'slack_oauth',
  'facebook_oauth',
  'webauthn_credential',
  'eth_wallet',
  'sol_wallet',
] as const;
