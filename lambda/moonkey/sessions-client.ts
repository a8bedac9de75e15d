import { ExportError } from '../core/errors';
import {
  classifyNetworkError,
  classifyResponse,
  type SessionsResponse,
  type USER_NOT_FOUND,
} from './classify-response';
import { createHttpTransport, type HttpTransportOptions } from './http-transport';

export type SessionsClientOptions = HttpTransportOptions;

/**
 * One attempt at `GET /v1/auth/sessions/list`: the parsed body with each item's raw text,
 * USER_NOT_FOUND, or a typed error.
 */
export type FetchSessions = (
  userId: string,
  signal: AbortSignal,
) => Promise<SessionsResponse | typeof USER_NOT_FOUND>;

export interface SessionsClient {
  readonly fetchSessions: FetchSessions;
  close(): Promise<void>;
}

/**
 * MoonKey's list-sessions call: the transport (http-transport.ts) sends it, classify-response.ts
 * says what the answer means. The API key lives only in these two closures.
 */
export function createSessionsClient(options: SessionsClientOptions): SessionsClient {
  const transport = createHttpTransport(options);
  const fetchSessions: FetchSessions = async (userId, signal) => {
    if (signal.aborted) throw signal.reason;
    let response: Awaited<ReturnType<typeof transport.get>>;
    try {
      response = await transport.get(`/v1/auth/sessions/list?user_id=${encodeURIComponent(userId)}`, signal);
    } catch (error) {
      if (signal.aborted) throw signal.reason;
      if (error instanceof ExportError) throw error;
      throw classifyNetworkError(error);
    }
    return classifyResponse(response, options.apiKey, Date.now());
  };
  return { fetchSessions, close: () => transport.close() };
}
