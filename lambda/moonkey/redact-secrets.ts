const REDACTED = '[REDACTED]';

/**
 * Removes the API key, and any `Bearer <token>`, from a text taken from a response, before it is
 * stored or logged: a gateway or an API error page that echoes the request's Authorization header
 * would otherwise put the key into logs, the manifest and failed-users/.
 */
export function redactSecrets(text: string, apiKey: string): string {
  return withoutApiKey(text, apiKey).replace(
    /(bearer)(\s+|%20|\+)(?!\[REDACTED\])[^\s"'\\,;&<>]+/gi,
    `$1$2${REDACTED}`,
  );
}

/**
 * Removes only the API key: what session data gets, where a `Bearer` word followed by text may
 * be a user's own data (a user agent, say) and must stay as sent.
 */
export function withoutApiKey(text: string, apiKey: string): string {
  return apiKey.length > 0 && text.includes(apiKey) ? text.split(apiKey).join(REDACTED) : text;
}
