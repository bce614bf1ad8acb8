/**
 * Issue 11 §4: the gateway presents its own client token (--node-token-file) and verifies the
 * nodes' certificates (--node-tls-ca) when it reaches nodes that require a token over TLS. A
 * gateway without the token is refused by the nodes (its answers say UNAUTHENTICATED), so the
 * node's client port cannot be used to bypass the gateway's tokens.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, tempDir } from '../helpers/local-cluster.js';
import { makeTestCa } from '../helpers/test-certs.js';

test('the gateway reaches token-and-TLS nodes with its token; without it the nodes refuse it', async (t) => {
  const ca = makeTestCa('gateway');
  const cert = ca.issue('node');
  const dir = tempDir('gateway-node-access');
  const tokensFile = path.join(dir, 'tokens.json');
  fs.writeFileSync(
    tokensFile,
    JSON.stringify({ tokens: [{ token: 'gateway-token-01', scopes: ['admin'] }] }),
  );
  const tokenFile = path.join(dir, 'gateway-token.txt');
  fs.writeFileSync(tokenFile, 'gateway-token-01\n');
  const cluster = await startLocalCluster({
    nodeCount: 1,
    extraArgs: ['--client-tokens-file', tokensFile, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile],
    clientTls: { ca: ca.ca },
  });
  const gateways: GatewayProcess[] = [];
  t.teardown(async () => {
    for (const g of gateways) await g.stop();
    await cluster.destroy();
    ca.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const withToken = await GatewayProcess.start({
    nodes: cluster.clientAddrs,
    extraArgs: ['--node-token-file', tokenFile, '--node-tls-ca', ca.caFile],
  });
  gateways.push(withToken);
  const created = await fetch(`${withToken.url}/v1/topics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'through-gateway' }),
  });
  t.true(created.status === 201 || created.status === 200, await created.text());
  const appended = await fetch(`${withToken.url}/v1/topics/through-gateway/records`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ records: [{ value: 'hello' }] }),
  });
  t.is(appended.status, 201, await appended.text());

  const withoutToken = await GatewayProcess.start({
    nodes: cluster.clientAddrs,
    extraArgs: ['--node-tls-ca', ca.caFile],
  });
  gateways.push(withoutToken);
  const refused = await fetch(`${withoutToken.url}/v1/topics`);
  const body = await refused.text();
  t.true(refused.status >= 400, body);
  t.regex(body, /UNAUTHENTICATED/);
});
