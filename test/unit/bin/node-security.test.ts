/**
 * The node's SIGHUP reload (node/bin/node-security.ts) on real files and real TLS sockets, in
 * process: tokens and TLS files are replaced together or not at all (a good tokens file beside a
 * mismatched key leaves the old tokens in force); a token list that would turn authentication off
 * is refused; the peer links' TLS options take the new CA and client certificate at their next
 * connect (a raft port that trusts only the new CA accepts them after the reload, not before);
 * reloads are counted and logged once each.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import { loadNodeSecurity, reloadNodeSecurity, securityJson } from '../../../node/bin/node-security.js';
import { ConfigError, type NodeConfig, parseNodeConfig } from '../../../node/config/node-config.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { tempDir } from '../../helpers/local-cluster.js';
import { makeTestCa } from '../../helpers/test-certs.js';

const oldCa = makeTestCa('sec-old');
const newCa = makeTestCa('sec-new');
const oldNode = oldCa.issue('node');
const newNode = newCa.issue('node');
const dir = tempDir('node-security');
test.after.always(() => {
  oldCa.remove();
  newCa.remove();
  fs.rmSync(dir, { recursive: true, force: true });
});

const files = {
  cert: path.join(dir, 'cert.pem'),
  key: path.join(dir, 'key.pem'),
  ca: path.join(dir, 'ca.pem'),
  tokens: path.join(dir, 'tokens.json'),
};

function writeTokens(...tokens: string[]): void {
  fs.writeFileSync(
    files.tokens,
    JSON.stringify({ tokens: tokens.map((token) => ({ token, scopes: ['read'] })) }),
  );
}

function install(cert: string, key: string, ca: string): void {
  fs.writeFileSync(files.cert, cert);
  fs.writeFileSync(files.key, key);
  fs.writeFileSync(files.ca, ca);
}

function config(): NodeConfig {
  const c = parseNodeConfig(
    [
      '--node-id',
      '1',
      '--client-tokens-file',
      files.tokens,
      '--tls-cert',
      files.cert,
      '--tls-key',
      files.key,
      '--tls-ca',
      files.ca,
      '--peer-mtls',
    ],
    {},
  );
  if (c === 'help') throw new Error('help');
  return c;
}

function captureLogger() {
  const lines: { level: string; fields: Record<string, unknown>; msg: string }[] = [];
  const at =
    (level: string) =>
    (fields: object, msg: string): void => {
      lines.push({ level, fields: fields as Record<string, unknown>, msg });
    };
  return { lines, logger: { info: at('info'), warn: at('warn'), error: at('error') } };
}

test.serial('a reload replaces tokens and TLS together, or nothing; turning auth off is refused', (t) => {
  install(oldNode.cert, oldNode.key, oldCa.ca);
  writeTokens('old-token-0001');
  const cfg = config();
  const security = loadNodeSecurity(cfg);
  const { lines, logger } = captureLogger();
  t.deepEqual(security.auth.authenticate(1, '10.0.0.1:5', 'old-token-0001'), ['read']);

  // Good tokens, but a new certificate beside the old key: nothing changes, one error line.
  writeTokens('new-token-0001');
  install(newNode.cert, oldNode.key, newCa.ca);
  t.false(reloadNodeSecurity(security, cfg, logger));
  t.is(lines.length, 1);
  t.is(lines[0]!.level, 'error');
  t.is(lines[0]!.fields['code'], ErrorCode.INVALID_CONFIG);
  t.regex(String(lines[0]!.fields['err']), /--tls-cert .*not the certificate/);
  t.deepEqual(
    security.auth.authenticate(2, '10.0.0.1:5', 'old-token-0001'),
    ['read'],
    'old token still valid',
  );
  t.throws(() => security.auth.authenticate(3, '10.0.0.1:5', 'new-token-0001'), { message: /not valid/ });
  t.is(security.clientTls?.material.cert, oldNode.cert);
  t.is(security.peerTls?.material.ca, oldCa.ca);
  t.deepEqual(securityJson(security.figures()), {
    tls_handshake_failures: { client: 0, raft: 0 },
    reloads_succeeded: 0,
    reloads_failed: 1,
    last_reload_succeeded: false,
  });

  // All files whole: everything is replaced, one info line with the new fingerprint.
  install(newNode.cert, newNode.key, newCa.ca);
  t.true(reloadNodeSecurity(security, cfg, logger));
  t.is(lines.length, 2);
  t.is(lines[1]!.level, 'info');
  t.is(lines[1]!.fields['certFingerprint256'], new X509Certificate(newNode.cert).fingerprint256);
  t.throws(() => security.auth.authenticate(4, '10.0.0.1:5', 'old-token-0001'), { message: /not valid/ });
  t.deepEqual(security.auth.authenticate(5, '10.0.0.1:5', 'new-token-0001'), ['read']);
  t.deepEqual(
    security.auth.principalOf(1)?.scopes,
    new Set(['read']),
    'an authenticated connection keeps its principal',
  );
  t.is(security.clientTls?.material.cert, newNode.cert);
  t.is(security.clientTls?.material.ca, undefined, 'the client port asks for no client certificate');
  t.is(security.peerTls?.material.ca, newCa.ca);
  t.true(security.peerTls?.material.requestCert);
  t.like(security.figures(), { reloadsSucceeded: 1, reloadsFailed: 1, lastReloadSucceeded: true });

  // An empty token list would open the client port: refused. So is an unreadable file.
  fs.writeFileSync(files.tokens, JSON.stringify({ tokens: [] }));
  t.throws(() => security.reload(), { instanceOf: ConfigError, message: /holds no token.*needs a restart/ });
  fs.rmSync(files.tokens);
  t.throws(() => security.reload(), { instanceOf: ConfigError, message: /cannot read --client-tokens-file/ });
  fs.writeFileSync(files.tokens, '{"tokens": [ {"token": "short"} ]}');
  t.throws(() => security.reload(), { instanceOf: ConfigError, message: /tokens\[0\]/ });
  t.deepEqual(security.auth.authenticate(6, '10.0.0.1:5', 'new-token-0001'), ['read']);
  t.like(security.figures(), { reloadsSucceeded: 1, reloadsFailed: 4, lastReloadSucceeded: false });
});

test.serial('peer links take the new CA and client certificate at their next connect', async (t) => {
  install(oldNode.cert, oldNode.key, oldCa.ca);
  writeTokens('old-token-0001');
  const cfg = config();
  const security = loadNodeSecurity(cfg);
  // A peer's raft port that has already rotated: new CA only, and client certificates required.
  const peer = tls.createServer(
    { cert: newNode.cert, key: newNode.key, ca: newCa.ca, requestCert: true, rejectUnauthorized: true },
    (socket) => socket.end('hello'),
  );
  peer.on('tlsClientError', () => {});
  await new Promise<void>((resolve) => peer.listen(0, '127.0.0.1', resolve));
  t.teardown(() => peer.close());
  const port = (peer.address() as { port: number }).port;
  const dial = (): Promise<string> =>
    new Promise((resolve) => {
      const socket = tls.connect({ ...security.peerClientTls, host: '127.0.0.1', port }, () => {
        socket.once('data', (d: Buffer) => resolve(`ok:${d.toString()}`));
      });
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(`error:${e.code ?? e.message}`));
    });
  t.regex(await dial(), /^error:/, 'the old CA does not trust the rotated peer');
  install(newNode.cert, newNode.key, newCa.ca);
  security.reload();
  t.is(await dial(), 'ok:hello', 'after the reload the link trusts it and is trusted');
});
