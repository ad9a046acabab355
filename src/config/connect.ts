/**
 * Connecting to Temporal with the settings of `settingsFromEnv` (envconfig profiles and the
 * `TEMPORAL_*` variables: address, TLS, API key), with an error that says what to check.
 * @module
 */
import tls from 'node:tls';
import { Connection } from '@temporalio/client';
import type { ConnectionSettings } from './settings';
import { ConfigurationError } from '../contract/errors';

/**
 * Why a TLS connection to `address` fails, as the TLS layer says it (e.g. the server's "unknown
 * ca" alert for a client certificate it does not trust), or undefined when a handshake succeeds.
 * gRPC itself only reports a timeout for these.
 */
export async function tlsHandshakeProblem(settings: Pick<ConnectionSettings, 'temporal'>): Promise<string | undefined> {
  const { address, tls: options } = settings.temporal;
  if (!options) return undefined;
  const cfg = options === true ? {} : options;
  const [host, port] = [address.slice(0, address.lastIndexOf(':')), Number(address.slice(address.lastIndexOf(':') + 1))];
  return new Promise((resolve) => {
    const socket = tls.connect({
      host,
      port,
      servername: cfg.serverNameOverride ?? host,
      ...(cfg.serverRootCACertificate ? { ca: Buffer.from(cfg.serverRootCACertificate) } : {}),
      ...(cfg.clientCertPair ? { cert: Buffer.from(cfg.clientCertPair.crt), key: Buffer.from(cfg.clientCertPair.key) } : {}),
      ALPNProtocols: ['h2'],
      timeout: 5000,
    });
    const done = (problem: string | undefined) => {
      socket.destroy();
      resolve(problem);
    };
    // TLS 1.3 sends the server's verdict on the client certificate after the handshake: wait for it.
    socket.once('secureConnect', () => setTimeout(() => done(undefined), 300));
    socket.once('error', (err: Error & { code?: string }) => done(explainTls(err)));
    socket.once('timeout', () => done('no TLS handshake within 5 s'));
  });
}

/** A TLS error in words, with what usually causes it (openssl's messages are one long line of codes). */
function explainTls(err: Error & { code?: string }): string {
  const alert = /alert ([a-z ]+?)(?::|$)/i.exec(err.message)?.[1]?.trim();
  if (alert === 'unknown ca') return 'alert "unknown ca": the server does not trust the CA that signed the client certificate';
  if (alert === 'certificate required') return 'alert "certificate required": the server wants a client certificate and none was sent';
  if (alert) return `alert "${alert}": the server refused the client certificate`;
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID') return `${err.message} (set TEMPORAL_TLS_SERVER_NAME to a name the server certificate has)`;
  if (/self[- ]signed|unable to (get|verify)/i.test(err.message)) return `${err.message}: the client does not trust the server's certificate (TEMPORAL_TLS_SERVER_CA_CERT_PATH)`;
  return err.message.split('\n')[0];
}

/** What a failed connection tells the operator to look at. */
export function connectionProblem(settings: Pick<ConnectionSettings, 'temporal'>, err: unknown, tlsProblem?: string): ConfigurationError {
  const { address, tls, apiKey } = settings.temporal;
  const how = [tls ? 'TLS' : 'no TLS', apiKey ? 'an API key' : 'no API key'].join(', ');
  return new ConfigurationError(
    `cannot connect to Temporal at ${address} (${how}): ${(err as Error)?.message ?? String(err)}${tlsProblem ? `; the TLS handshake says: ${tlsProblem}` : ''}. ` +
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
    throw connectionProblem(settings, err, await tlsHandshakeProblem(settings));
  }
}
