import { redactSecrets } from '../../lambda/moonkey/redact-secrets';

describe('redactSecrets', () => {
  const key = 'sk_live_abc123';

  it('removes every occurrence of the key, wherever it appears', () => {
    expect(redactSecrets(`{"echo":"${key}","again":"x${key}y"}`, key)).toBe(
      '{"echo":"[REDACTED]","again":"x[REDACTED]y"}',
    );
  });

  it('removes any Bearer token, whatever its case and separator', () => {
    expect(redactSecrets('Authorization: Bearer other_token.v2 and bearer%20zzz, BEARER+qq;', key)).toBe(
      'Authorization: Bearer [REDACTED] and bearer%20[REDACTED], BEARER+[REDACTED];',
    );
    expect(redactSecrets('{"authorization":"Bearer sk_test_x"}', key)).toBe(
      '{"authorization":"Bearer [REDACTED]"}',
    );
  });

  it('leaves other text alone', () => {
    expect(redactSecrets('{"error":"bad_request","message":"user_id is required"}', key)).toBe(
      '{"error":"bad_request","message":"user_id is required"}',
    );
  });
});
