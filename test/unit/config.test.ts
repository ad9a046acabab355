/** Connection settings from the environment: Temporal's standard client configuration (envconfig). */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { settingsFromEnv, temporalFromEnv } from '../../src/config/settings';
import { ConfigurationError } from '../../src/contract/errors';

describe('temporalFromEnv', () => {
  it('defaults to localhost:7233 and the default namespace, without TLS', () => {
    const { connection, namespace } = temporalFromEnv({ TEMPORAL_CONFIG_FILE: '/nonexistent/temporal.toml' });
    expect(connection.address).toBe('localhost:7233');
    expect(namespace).toBe('default');
    expect(connection.tls ?? false).toBeFalsy();
  });

  it('reads the standard TEMPORAL_* variables: address, namespace, API key (TLS on), client certificate', () => {
    const cloud = temporalFromEnv({ TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233', TEMPORAL_NAMESPACE: 'ns.acct', TEMPORAL_API_KEY: 'key-123' });
    expect(cloud.connection).toMatchObject({ address: 'ns.acct.tmprl.cloud:7233', apiKey: 'key-123' });
    expect(cloud.connection.tls).toBeTruthy();
    expect(cloud.namespace).toBe('ns.acct');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'envconfig-'));
    writeFileSync(path.join(dir, 'c.pem'), 'CERT');
    writeFileSync(path.join(dir, 'c.key'), 'KEY');
    const mtls = temporalFromEnv({
      TEMPORAL_ADDRESS: 'temporal.internal:7233',
      TEMPORAL_TLS_CLIENT_CERT_PATH: path.join(dir, 'c.pem'),
      TEMPORAL_TLS_CLIENT_KEY_PATH: path.join(dir, 'c.key'),
      TEMPORAL_TLS_SERVER_NAME: 'frontend.internal',
    });
    const tls = mtls.connection.tls as { serverNameOverride?: string; clientCertPair?: { crt: Uint8Array; key: Uint8Array } };
    expect(tls.serverNameOverride).toBe('frontend.internal');
    expect(Buffer.from(tls.clientCertPair!.crt).toString()).toBe('CERT');
    expect(Buffer.from(tls.clientCertPair!.key).toString()).toBe('KEY');
  });

  it('reads a named profile from a TOML file, the variables overriding it', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'envconfig-'));
    const file = path.join(dir, 'temporal.toml');
    writeFileSync(file, '[profile.prod]\naddress = "prod.example:7233"\nnamespace = "feeds"\napi_key = "from-file"\n');
    const prod = settingsFromEnv({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod' });
    expect(prod.temporalAddress).toBe('prod.example:7233');
    expect(prod.namespace).toBe('feeds');
    expect(prod.temporal.apiKey).toBe('from-file');
    expect(settingsFromEnv({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'prod', TEMPORAL_NAMESPACE: 'other' }).namespace).toBe('other');
  });

  it('names what is wrong: a profile that is not in the file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'envconfig-'));
    const file = path.join(dir, 'temporal.toml');
    writeFileSync(file, '[profile.prod]\naddress = "prod.example:7233"\n');
    expect(() => temporalFromEnv({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' })).toThrow(ConfigurationError);
    expect(() => temporalFromEnv({ TEMPORAL_CONFIG_FILE: file, TEMPORAL_PROFILE: 'staging' })).toThrow(/Temporal client configuration.*staging/);
  });
});
