import { redactSecrets, withoutApiKey } from '../../../lambda/moonkey/redact-secrets';

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

  it('removes a token after several spaces or tabs', () => {
    expect(redactSecrets('Bearer  two_spaces and Bearer\t\ttabbed', key)).toBe(
      'Bearer  [REDACTED] and Bearer\t\t[REDACTED]',
    );
  });

  it('leaves other text alone', () => {
    expect(redactSecrets('{"error":"bad_request","message":"user_id is required"}', key)).toBe(
      '{"error":"bad_request","message":"user_id is required"}',
    );
  });
});

describe('withoutApiKey', () => {
  const key = 'sk_live_abc123';

  it('removes every occurrence of the key and nothing else, Bearer words included', () => {
    expect(withoutApiKey(`{"ua":"Bearer ${key}","note":"Bearer of news","k":"${key}${key}"}`, key)).toBe(
      '{"ua":"Bearer [REDACTED]","note":"Bearer of news","k":"[REDACTED][REDACTED]"}',
    );
  });

  it('returns the very text when the key is not in it', () => {
    const text = '{"sessions":[]}';
    expect(withoutApiKey(text, key)).toBe(text);
  });

  it('treats an empty key as nothing to remove', () => {
    expect(withoutApiKey('abc', '')).toBe('abc');
    expect(redactSecrets('abc', '')).toBe('abc');
  });
});
