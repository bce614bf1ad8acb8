/**
 * The gateway's SIGHUP reload (gateway/reload.ts) on real files and a real HTTPS server, in
 * process: a good tokens file beside a mismatched key replaces nothing; whole files replace the
 * tokens and the certificate new connections see; a token list that would open the gateway, an
 * unreadable file, a document that does not parse and a nodes' CA file without a certificate are
 * refused with the file named.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import { Authenticator } from '../../../gateway/middleware/auth.js';
import {
  checkCertAndKey,
  GatewayReloadError,
  NodeCredential,
  NodeTrust,
  reloadGateway,
} from '../../../gateway/reload.js';
import { tempDir } from '../../helpers/local-cluster.js';
import { makeTestCa } from '../../helpers/test-certs.js';

const ca = makeTestCa('gw-reload-unit');
const one = ca.issue('one');
const two = ca.issue('two');
const dir = tempDir('gateway-reload-unit');
test.after.always(() => {
  ca.remove();
  fs.rmSync(dir, { recursive: true, force: true });
});
const files = {
  tokens: path.join(dir, 'tokens.json'),
  tls: { cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') },
  nodeCa: path.join(dir, 'nodes-ca.pem'),
  nodeToken: path.join(dir, 'node-token.txt'),
};
const tokens = (...list: string[]): string =>
  JSON.stringify({ tokens: list.map((token) => ({ token, scopes: ['read'] })) });

function served(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: ca.ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

test('checkCertAndKey takes a matching pair and names what is wrong otherwise', (t) => {
  t.is(checkCertAndKey(one.cert, one.key).fingerprint256, new X509Certificate(one.cert).fingerprint256);
  t.throws(() => checkCertAndKey(one.cert, two.key), {
    instanceOf: GatewayReloadError,
    message: /not the certificate/,
  });
  t.throws(() => checkCertAndKey('x', one.key), { message: /certificate does not parse/ });
  t.throws(() => checkCertAndKey(one.cert, 'x'), { message: /private key does not parse/ });
});

test('a reload replaces tokens and certificate together, or nothing', async (t) => {
  const server = https.createServer({ cert: one.cert, key: one.key }, (_req, res) => res.end('ok'));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => server.close());
  const port = (server.address() as { port: number }).port;
  const auth = new Authenticator([{ token: 'old-token-0001', scopes: ['read'] }]);
  const nodeTrust = new NodeTrust(ca.ca);
  const trustedAtStart = nodeTrust.options.secureContext;
  const nodeCredential = new NodeCredential('node-token-old');
  const target = { files, auth, server, nodeTrust, nodeCredential };
  fs.writeFileSync(files.nodeToken, 'node-token-new\n');

  fs.writeFileSync(files.tokens, tokens('new-token-0001'));
  fs.writeFileSync(files.tls.cert, two.cert);
  fs.writeFileSync(files.tls.key, one.key);
  fs.writeFileSync(files.nodeCa, ca.ca);
  t.throws(() => reloadGateway(target), {
    instanceOf: GatewayReloadError,
    message: /--tls-cert .*not the certificate/,
  });
  t.truthy(auth.authenticate('Bearer old-token-0001', undefined), 'the old token still works');
  t.throws(() => auth.authenticate('Bearer new-token-0001', undefined), { message: /not valid/ });
  t.is(await served(port), new X509Certificate(one.cert).fingerprint256);
  t.is(nodeTrust.options.secureContext, trustedAtStart, 'the nodes’ CA is not replaced either');
  t.is(nodeCredential.read(), 'node-token-old', 'nor the node token');

  fs.writeFileSync(files.tls.key, two.key);
  t.deepEqual(reloadGateway(target), {
    tokenCount: 1,
    certFingerprint256: new X509Certificate(two.cert).fingerprint256,
  });
  t.throws(() => auth.authenticate('Bearer old-token-0001', undefined), { message: /not valid/ });
  t.truthy(auth.authenticate('Bearer new-token-0001', undefined));
  t.is(await served(port), new X509Certificate(two.cert).fingerprint256);
  const trustedNow = nodeTrust.options.secureContext;
  t.not(trustedNow, trustedAtStart, 'new node connections use the re-read CA');
  t.is(nodeCredential.read(), 'node-token-new', 'and prove the re-read node token');

  fs.writeFileSync(files.nodeToken, 'short\n');
  t.throws(() => reloadGateway(target), { message: /--node-token-file .*must be/ });
  t.is(nodeCredential.read(), 'node-token-new');
  fs.writeFileSync(files.nodeToken, 'node-token-new\n');

  fs.writeFileSync(files.nodeCa, 'nonsense');
  t.throws(() => reloadGateway(target), { message: /--node-tls-ca .*holds no PEM certificate/ });
  t.is(nodeTrust.options.secureContext, trustedNow);
  fs.writeFileSync(files.nodeCa, ca.ca);

  fs.writeFileSync(files.tokens, tokens());
  t.throws(() => reloadGateway(target), { message: /holds no token.*needs a restart/ });
  fs.writeFileSync(files.tokens, '{');
  t.throws(() => reloadGateway(target), { message: /--tokens-file/ });
  fs.rmSync(files.tokens);
  t.throws(() => reloadGateway(target), { message: /cannot read --tokens-file/ });
  t.truthy(auth.authenticate('Bearer new-token-0001', undefined));
});
