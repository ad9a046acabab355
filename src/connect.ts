/**
 * Connecting to Temporal with the settings of `settingsFromEnv` (envconfig profiles and the
 * `TEMPORAL_*` variables: address, TLS, API key), with an error that says what to check.
 * @module
 */
import { Connection } from '@temporalio/client';
import type { ConnectionSettings } from './config';
import { ConfigurationError } from './errors';

/** What a failed connection tells the operator to look at. */
export function connectionProblem(settings: Pick<ConnectionSettings, 'temporal'>, err: unknown): ConfigurationError {
  const { address, tls, apiKey } = settings.temporal;
  const how = [tls ? 'TLS' : 'no TLS', apiKey ? 'an API key' : 'no API key'].join(', ');
  return new ConfigurationError(
    `cannot connect to Temporal at ${address} (${how}): ${(err as Error)?.message ?? String(err)}. ` +
      'Check TEMPORAL_ADDRESS, the TLS settings (TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, ' +
      'TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME) or TEMPORAL_API_KEY, TEMPORAL_PROFILE, and that the server is up.',
    { cause: err },
  );
}

/** A client connection (for `Client`) to the Temporal of `settings`. @throws ConfigurationError saying what to check. */
export async function connectClient(settings: Pick<ConnectionSettings, 'temporal'>): Promise<Connection> {
  const { address, tls, apiKey, metadata } = settings.temporal;
  try {
    return await Connection.connect({ address, ...(tls !== undefined ? { tls } : {}), ...(apiKey ? { apiKey } : {}), ...(metadata ? { metadata } : {}) });
  } catch (err) {
    throw connectionProblem(settings, err);
  }
}
