import { ApiRequestError, MalformedResponseError } from '../../../lambda/core/errors';
import { PII_PRESETS } from '../../../lambda/pii/pii-policy';
import { createPiiCopies, RAW_ONLY } from '../../../lambda/run/pii-copies';

const KEY = Buffer.from('a-test-key-of-thirty-two-bytes!!');
const PHONE = '+14155550123';
const session = {
  id: 's1',
  factors: [{ method: { phone_number: '+1 415 555 0123' } }],
  device_fingerprint: { ip: '' },
};
const ours = { snapshot_id: 'snap', run_id: 'r1' };

describe('createPiiCopies', () => {
  it('writes only the raw copy in raw mode, with no policy or key in the manifest', () => {
    const copies = createPiiCopies(
      { copies: 'raw', policy: PII_PRESETS.pseudonymize, key: undefined },
      undefined,
    );
    expect(copies).toBe(RAW_ONLY);
    expect(copies.manifestEntry).toEqual({ copies: 'raw', policy: null, key_fingerprint: null });
    expect(copies.failureText(new ApiRequestError(400, `HTTP 400: ${PHONE}`))).toBe(`HTTP 400: ${PHONE}`);
  });

  it('writes the pseudonymized copy only, or both, and records the policy and key fingerprint', () => {
    const pseudo = createPiiCopies(
      { copies: 'pseudonymized', policy: PII_PRESETS.analytics, key: undefined },
      KEY,
    );
    expect([pseudo.writesRaw, pseudo.sessionLine !== undefined]).toEqual([false, true]);
    expect(pseudo.manifestEntry).toEqual({
      copies: 'pseudonymized',
      policy:
        'phone_number=hash,email=hash,wallet_public_address=hash,provider_subject=hash,ip=truncate/24/48,user_agent=keep',
      key_fingerprint: expect.stringMatching(/^hmac-sha256:[0-9a-f]{16}$/),
    });
    const both = createPiiCopies({ copies: 'both', policy: PII_PRESETS.analytics, key: undefined }, KEY);
    expect([both.writesRaw, both.sessionLine !== undefined]).toEqual([true, true]);
    expect(both.manifestEntry.copies).toBe('both');
  });

  it('refuses a pseudonymized copy without a key', () => {
    expect(() =>
      createPiiCopies({ copies: 'both', policy: PII_PRESETS.analytics, key: undefined }, undefined),
    ).toThrow('EXPORT_COPIES=both needs the PII key');
  });

  it('writes a session line with the policy applied and our fields last', () => {
    const copies = createPiiCopies({ copies: 'both', policy: PII_PRESETS.pseudonymize, key: undefined }, KEY);
    const line = copies.sessionLine?.({ ...session, run_id: 'theirs' }, ours) ?? '';
    expect(line.endsWith('\n')).toBe(true);
    const record = JSON.parse(line);
    expect(record).toEqual({
      id: 's1',
      factors: [{ method: { phone_number: expect.stringMatching(/^hmac:/) } }],
      device_fingerprint: { ip: '' },
      snapshot_id: 'snap',
      run_id: 'r1',
    });
    expect(line).not.toContain('415');
  });

  it('writes a rejects line with the pseudonymized item in place of the raw text', () => {
    const copies = createPiiCopies(
      { copies: 'pseudonymized', policy: PII_PRESETS.pseudonymize, key: undefined },
      KEY,
    );
    const raw = JSON.stringify(session);
    const line =
      copies.rejectLine?.(
        {
          user_id: 'u1',
          reason: 'schema',
          issues: [{ path: 'user_id', message: 'Invalid input' }],
          item_raw: raw,
          item_length: raw.length,
          item_truncated: false,
        },
        ours,
      ) ?? '';
    expect(line.endsWith('\n')).toBe(true);
    const record = JSON.parse(line);
    expect(record).toEqual({
      snapshot_id: 'snap',
      run_id: 'r1',
      user_id: 'u1',
      reason: 'schema',
      issues: [{ path: 'user_id', message: 'Invalid input' }],
      item: expect.stringContaining('hmac:'),
      item_withheld: null,
      item_length: raw.length,
    });
    expect(line).not.toContain('415');
    expect(record).not.toHaveProperty('item_raw');
  });

  it('withholds MoonKey response text from failure texts, and keeps our own', () => {
    const copies = createPiiCopies({ copies: 'both', policy: PII_PRESETS.pseudonymize, key: undefined }, KEY);
    expect(copies.failureText(new ApiRequestError(400, `HTTP 400: {"phone":"${PHONE}"}`))).toBe(
      "HTTP 400 (the response text is withheld: with EXPORT_COPIES=both no output outside the raw sessions and rejects holds MoonKey's text)",
    );
    expect(copies.failureText(new MalformedResponseError('response is not JSON'))).toBe(
      'response is not JSON',
    );
  });
});
