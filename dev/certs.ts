/**
 * Certificates for testing TLS for real, made with the `openssl` command: a CA, a node certificate
 * for the cluster (server and client auth; names the server name, localhost and 127.0.0.1), a
 * client certificate for apps and workers, and a client certificate from another CA that the
 * cluster must refuse.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { LocalStackError } from '../src/contract/errors';

/** The files {@link makeTestCertificates} writes (PEM). */
export interface TestCertificates {
  dir: string;
  serverName: string;
  caFile: string;
  node: { certFile: string; keyFile: string };
  client: { certFile: string; keyFile: string };
  /** A client certificate signed by another CA: a wrong one. */
  rogue: { certFile: string; keyFile: string };
}

function openssl(args: string[], cwd: string): void {
  try {
    execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new LocalStackError(`openssl ${args[0]} failed${stderr ? `: ${stderr}` : ''} (is openssl installed? Debian: apt-get install openssl)`, { cause: err });
  }
}

/** Makes a CA and the certificates of {@link TestCertificates} in `dir` (valid for a day). */
export function makeTestCertificates(dir: string, serverName = 'frontend.feed-fanout.test'): TestCertificates {
  mkdirSync(dir, { recursive: true });
  const ca = (name: string) => {
    openssl(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '1', '-subj', `/CN=${name}`], dir);
    return name;
  };
  const issue = (name: string, signer: string, cn: string, ext: string) => {
    writeFileSync(path.join(dir, `${name}.ext`), ext);
    openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${cn}`], dir);
    openssl(['x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '1', '-extfile', `${name}.ext`], dir);
    return { certFile: path.join(dir, `${name}.pem`), keyFile: path.join(dir, `${name}.key`) };
  };
  ca('test-ca');
  ca('rogue-ca');
  const node = issue('node', 'test-ca', serverName, `subjectAltName=DNS:${serverName},DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`);
  const client = issue('client', 'test-ca', 'feed-fanout-app', 'extendedKeyUsage=clientAuth\n');
  const rogue = issue('rogue', 'rogue-ca', 'someone-else', 'extendedKeyUsage=clientAuth\n');
  return { dir, serverName, caFile: path.join(dir, 'test-ca.pem'), node, client, rogue };
}
