import type { PiiConfig } from '../core/config';
import { ApiRequestError } from '../core/errors';
import type { RejectedItem } from '../moonkey/validate-sessions';
import { createPolicyApplier } from '../pii/apply-policy';
import { createTokenizer } from '../pii/hmac-token';
import { keyFingerprint } from '../pii/key-fingerprint';
import { describePolicy } from '../pii/pii-policy';
import { pseudonymizeReject } from '../pii/pseudonymize-reject';
import type { ManifestPii } from '../snapshot/manifest';

/** What the manifest says about the copies of a run: which, under what policy, with which key. */
/** The manifest's `pii` (its shape is the manifest's own: snapshot/manifest.ts). */
export type PiiManifestEntry = ManifestPii;

/**
 * The copies a run writes, built once per cold start from the config and the HMAC key. The
 * policy is applied only here, where records become lines for the writers (user-export.ts):
 * nothing upstream of it holds a pseudonymized value, nothing downstream a raw one.
 */
export interface PiiCopies {
  readonly writesRaw: boolean;
  readonly manifestEntry: PiiManifestEntry;
  /** A session as its pseudonymized line, with our fields; undefined in `raw` mode. */
  readonly sessionLine:
    | ((session: Record<string, unknown>, ours: Record<string, unknown>) => string)
    | undefined;
  /** A quarantined item as its pseudonymized rejects line; undefined in `raw` mode. */
  readonly rejectLine: ((reject: RejectedItem, ours: Record<string, unknown>) => string) | undefined;
  /** A failed user's error text as every output may hold it (failed-users files, manifests, logs). */
  readonly failureText: (error: Error) => string;
}

export const RAW_ONLY: PiiCopies = {
  writesRaw: true,
  manifestEntry: { copies: 'raw', policy: null, key_fingerprint: null },
  sessionLine: undefined,
  rejectLine: undefined,
  failureText: (error) => error.message,
};

export function createPiiCopies(config: PiiConfig, key: Buffer | undefined): PiiCopies {
  if (config.copies === 'raw') return RAW_ONLY;
  if (key === undefined) throw new Error(`EXPORT_COPIES=${config.copies} needs the PII key`);
  const apply = createPolicyApplier(config.policy, createTokenizer(key));
  return {
    writesRaw: config.copies === 'both',
    manifestEntry: {
      copies: config.copies,
      policy: describePolicy(config.policy),
      key_fingerprint: keyFingerprint(key),
    },
    sessionLine: (session, ours) => `${JSON.stringify({ ...apply(session), ...ours })}\n`,
    rejectLine: (reject, ours) => {
      const { item_raw, item_length, item_truncated, ...rest } = reject;
      return `${JSON.stringify({ ...ours, ...rest, ...pseudonymizeReject({ item_raw, item_length, item_truncated }, apply) })}\n`;
    },
    // A 4xx answer's body is MoonKey's text, which could echo a phone number or an address; the
    // failed-users file, the manifest and the logs are read by every audience.
    failureText: (error) =>
      error instanceof ApiRequestError
        ? `HTTP ${error.status} (the response text is withheld: with EXPORT_COPIES=${config.copies} no output outside the raw sessions and rejects holds MoonKey's text)`
        : error.message,
  };
}
