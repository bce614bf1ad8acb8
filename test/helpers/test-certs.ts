/**
 * Certificates made for a test with the machine's `openssl`: a CA and certificates it signs for
 * 127.0.0.1 / localhost (server and client use), written as PEM files in a temp directory the
 * caller removes. Two CAs made by two calls are unrelated (a peer "from another CA").
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface IssuedCert {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: string;
  readonly key: string;
}

export interface TestCa {
  readonly dir: string;
  readonly caFile: string;
  readonly ca: string;
  /** A certificate and key signed by this CA, for IP 127.0.0.1 and localhost. */
  issue(name: string): IssuedCert;
  remove(): void;
}

/** Bound of one openssl run. */
const opensslTimeoutMs = 30_000;
const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: 'pipe', timeout: opensslTimeoutMs });
}

export function makeTestCa(label: string): TestCa {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `walrus-ca-${label}-`));
  openssl(
    [
      'req',
      '-x509',
      ...ecKey,
      '-days',
      '2',
      '-subj',
      `/CN=walrus test CA ${label}`,
      '-keyout',
      'ca.key',
      '-out',
      'ca.pem',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ],
    dir,
  );
  fs.writeFileSync(
    path.join(dir, 'ext.cnf'),
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n',
  );
  const caFile = path.join(dir, 'ca.pem');
  return {
    dir,
    caFile,
    ca: fs.readFileSync(caFile, 'utf8'),
    issue(name: string): IssuedCert {
      openssl(
        ['req', '-new', ...ecKey, '-subj', `/CN=${name}`, '-keyout', `${name}.key`, '-out', `${name}.csr`],
        dir,
      );
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.pem',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '2',
          '-out',
          `${name}.pem`,
          '-extfile',
          'ext.cnf',
        ],
        dir,
      );
      const certFile = path.join(dir, `${name}.pem`);
      const keyFile = path.join(dir, `${name}.key`);
      return {
        certFile,
        keyFile,
        cert: fs.readFileSync(certFile, 'utf8'),
        key: fs.readFileSync(keyFile, 'utf8'),
      };
    },
    remove(): void {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
