/**
 * Issue 11 §4: the gateway presents its own client token (--node-token-file) and verifies the
 * nodes' certificates (--node-tls-ca) when it reaches nodes that require a token over TLS. A
 * gateway without the token is refused by the nodes (its answers say UNAUTHENTICATED), so the
 * node's client port cannot be used to bypass the gateway's tokens. SIGHUP re-reads that token
 * file: connections the gateway makes afterwards prove the new token.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, tempDir } from '../helpers/local-cluster.js';
import { makeTestCa } from '../helpers/test-certs.js';
import { writeTokensFile } from '../helpers/tokens-file.js';

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

test('SIGHUP makes the gateway prove its re-read node token on the connections it makes afterwards', async (t) => {
  const dir = tempDir('gateway-node-token-reload');
  const tokensFile = path.join(dir, 'tokens.json');
  const writeNodeTokens = (...tokens: string[]): void => writeTokensFile(tokensFile, tokens, ['admin']);
  const tokenFile = path.join(dir, 'gateway-token.txt');
  writeNodeTokens('gateway-token-old');
  fs.writeFileSync(tokenFile, 'gateway-token-old\n');
  const cluster = await startLocalCluster({ nodeCount: 1, extraArgs: ['--client-tokens-file', tokensFile] });
  const clients: WalrusClient[] = [];
  let gateway: GatewayProcess | undefined;
  t.teardown(async () => {
    await gateway?.stop();
    for (const c of clients) await c.close();
    await cluster.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  gateway = await GatewayProcess.start({
    nodes: cluster.clientAddrs,
    extraArgs: ['--node-token-file', tokenFile],
  });
  const url = gateway.url;
  const append = (value: string): Promise<Response> =>
    fetch(`${url}/v1/topics/rotated/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value }] }),
    });
  const created = await fetch(`${url}/v1/topics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'rotated' }),
  });
  t.is(created.status, 201, await created.text());
  t.is((await append('before')).status, 201);
  const accepted = async (token: string): Promise<boolean> => {
    const c = new WalrusClient({ nodes: cluster.clientAddrs, token, retryCountMax: 0 });
    clients.push(c);
    return c.ping().then(
      () => true,
      () => false,
    );
  };

  // The rotation an operator does: add the new token on the nodes, reload the gateway onto it,
  // remove the old token from the nodes.
  writeNodeTokens('gateway-token-old', 'gateway-token-new');
  cluster.nodes[0]!.process!.kill('SIGHUP');
  await eventually('the nodes take the new token', async () =>
    (await accepted('gateway-token-new')) ? true : undefined,
  );
  fs.writeFileSync(tokenFile, 'gateway-token-new\n');
  gateway.child.kill('SIGHUP');
  await eventually('the gateway reloaded', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    return /walrus_gateway_config_reloads_total\{result="success"\} 1/.test(text) ? true : undefined;
  });
  writeNodeTokens('gateway-token-new');
  cluster.nodes[0]!.process!.kill('SIGHUP');
  await eventually('the nodes refuse the old token', async () =>
    (await accepted('gateway-token-old')) ? undefined : true,
  );
  t.is((await append('on the connection made before')).status, 201);

  // A restarted node ends the gateway's old connections: the new ones must prove the new token.
  await cluster.restart(0);
  const status = await eventually('an append after the node restarted', async () => {
    const res = await append('after');
    const body = await res.text();
    if (res.status === 201) return 201;
    t.notRegex(body, /UNAUTHENTICATED/, 'the gateway reconnected with the old token');
    return undefined;
  });
  t.is(status, 201);
});
