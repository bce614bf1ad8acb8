/**
 * Issue 12, rotating credentials without a restart, on a real walrus-gateway process serving
 * HTTPS (openssl certificates, test-certs.ts) with a tokens file: SIGHUP makes new connections
 * see the new certificate (by fingerprint) and new requests meet the new tokens (the removed one
 * 401, the added one 200), while a keep-alive connection opened before keeps working; a reload
 * with a mismatched key keeps the old certificate, logs one INVALID_CONFIG line and moves
 * walrus_gateway_config_reloads_total{result="failure"}; a plaintext HTTP request on the HTTPS
 * port is counted in walrus_gateway_tls_handshake_failures_total. Before this change SIGHUP
 * killed the gateway.
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import https from 'node:https';
import path from 'node:path';
import type tls from 'node:tls';
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { GatewayProcess } from '../helpers/gateway-process.js';
import { startLocalCluster, tempDir } from '../helpers/local-cluster.js';
import { makeTestCa } from '../helpers/test-certs.js';

const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;

interface Answer {
  readonly status: number;
  readonly body: string;
  readonly fingerprint: string;
  readonly reused: boolean;
}

/** One HTTPS GET trusting `ca`; a fresh connection unless an agent is given. */
function get(
  port: number,
  urlPath: string,
  ca: string,
  options: { token?: string; agent?: https.Agent } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        ca,
        agent: options.agent ?? false,
        headers: options.token === undefined ? {} : { authorization: `Bearer ${options.token}` },
        timeout: 10_000,
      },
      (res) => {
        const socket = res.socket as tls.TLSSocket;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            fingerprint: socket.getPeerCertificate().fingerprint256,
            reused: req.reusedSocket,
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

test('SIGHUP rotates the gateway’s HTTPS certificate and tokens; a broken reload changes nothing', async (t) => {
  const ca = makeTestCa('gw-reload');
  const g1 = ca.issue('gw1');
  const g2 = ca.issue('gw2');
  const dir = tempDir('gateway-reload');
  const files = {
    cert: path.join(dir, 'cert.pem'),
    key: path.join(dir, 'key.pem'),
    tokens: path.join(dir, 'tokens.json'),
  };
  const put = (file: string, text: string): void => {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  };
  const tokens = (...list: string[]): string =>
    JSON.stringify({ tokens: list.map((token) => ({ token, scopes: ['admin'] })) });
  put(files.cert, g1.cert);
  put(files.key, g1.key);
  put(files.tokens, tokens('old-gw-token-01'));
  const cluster = await startLocalCluster({ nodeCount: 1 });
  const gateway = await GatewayProcess.start({
    nodes: cluster.clientAddrs,
    extraArgs: ['--tokens-file', files.tokens, '--tls-cert', files.cert, '--tls-key', files.key],
    env: { WALRUS_LOG_LEVEL: 'info' },
  });
  const keepAlive = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(async () => {
    keepAlive.destroy();
    await gateway.stop();
    await cluster.destroy();
    ca.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const reloadLines = (): string[] => gateway.logTail.split('\n').filter((l) => /"msg":"Reload/.test(l));
  const metrics = async (): Promise<string> => (await get(gateway.port, '/metrics', ca.ca)).body;

  const first = await get(gateway.port, '/v1/topics', ca.ca, { token: 'old-gw-token-01', agent: keepAlive });
  t.is(first.status, 200, first.body);
  t.is(first.fingerprint, fingerprintOf(g1.cert));

  // Rotate the certificate and the tokens together.
  put(files.cert, g2.cert);
  put(files.key, g2.key);
  put(files.tokens, tokens('new-gw-token-01'));
  gateway.child.kill('SIGHUP');
  await eventually('one info line', async () => (reloadLines().length === 1 ? true : undefined));
  t.regex(reloadLines()[0]!, /"level":"info".*"tokenCount":1.*"msg":"Reloaded tokens and TLS material"/);
  const fresh = await get(gateway.port, '/v1/topics', ca.ca, { token: 'new-gw-token-01' });
  t.is(fresh.status, 200, fresh.body);
  t.is(fresh.fingerprint, fingerprintOf(g2.cert), 'a new connection gets the new certificate');
  const removed = await get(gateway.port, '/v1/topics', ca.ca, { token: 'old-gw-token-01' });
  t.is(removed.status, 401, removed.body);
  t.regex(removed.body, /UNAUTHENTICATED/);
  // The keep-alive connection opened before the reload: still served, still the old session.
  const reused = await get(gateway.port, '/v1/topics', ca.ca, { token: 'new-gw-token-01', agent: keepAlive });
  t.true(reused.reused, 'the same connection');
  t.is(reused.status, 200);
  t.is(reused.fingerprint, fingerprintOf(g1.cert));

  // A broken reload: the first certificate with the second key. Nothing changes.
  put(files.cert, g1.cert);
  put(files.tokens, tokens('third-gw-token-1'));
  gateway.child.kill('SIGHUP');
  await eventually('one error line', async () => (reloadLines().length === 2 ? true : undefined));
  t.regex(reloadLines()[1]!, /"level":"error".*"code":"INVALID_CONFIG".*not the certificate/);
  t.is((await get(gateway.port, '/v1/topics', ca.ca)).fingerprint, fingerprintOf(g2.cert));
  t.is((await get(gateway.port, '/v1/topics', ca.ca, { token: 'new-gw-token-01' })).status, 200);
  t.is((await get(gateway.port, '/v1/topics', ca.ca, { token: 'third-gw-token-1' })).status, 401);
  const afterFailure = await metrics();
  t.is(sample(afterFailure, 'walrus_gateway_config_reloads_total{result="failure"}'), 1, afterFailure);
  t.is(sample(afterFailure, 'walrus_gateway_config_reloads_total{result="success"}'), 1);
  t.is(sample(afterFailure, 'walrus_gateway_config_last_reload_successful'), 0);

  // Plaintext HTTP on the HTTPS port: a failed handshake, counted.
  await fetch(`http://127.0.0.1:${gateway.port}/v1/health`).catch(() => null);
  await eventually('the failed handshake counted', async () =>
    (sample(await metrics(), 'walrus_gateway_tls_handshake_failures_total{listener="https"}') ?? 0) >= 1
      ? true
      : undefined,
  );
  t.true(gateway.alive);
});

test('after SIGHUP with a new --node-tls-ca, the gateway reaches a node restarted with the new CA’s certificate', async (t) => {
  const caA = makeTestCa('gw-nodes-a');
  const caB = makeTestCa('gw-nodes-b');
  const nodeA = caA.issue('node');
  const nodeB = caB.issue('node');
  const dir = tempDir('gateway-node-ca');
  const files = {
    cert: path.join(dir, 'cert.pem'),
    key: path.join(dir, 'key.pem'),
    nodesCa: path.join(dir, 'nodes-ca.pem'),
  };
  const put = (file: string, text: string): void => {
    fs.writeFileSync(`${file}.tmp`, text);
    fs.renameSync(`${file}.tmp`, file);
  };
  put(files.cert, nodeA.cert);
  put(files.key, nodeA.key);
  put(files.nodesCa, caA.ca);
  const cluster = await startLocalCluster({
    nodeCount: 1,
    extraArgs: ['--tls-cert', files.cert, '--tls-key', files.key],
    clientTls: { ca: `${caA.ca}\n${caB.ca}` },
  });
  const gateway = await GatewayProcess.start({
    nodes: cluster.clientAddrs,
    extraArgs: ['--node-tls-ca', files.nodesCa],
    env: { WALRUS_LOG_LEVEL: 'info' },
  });
  t.teardown(async () => {
    await gateway.stop();
    await cluster.destroy();
    caA.remove();
    caB.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const append = (): Promise<Response> =>
    fetch(`${gateway.url}/v1/topics/rotated/records`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ records: [{ value: 'x' }] }),
    });
  const created = await fetch(`${gateway.url}/v1/topics`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'rotated' }),
  });
  t.is(created.status, 201, await created.text());

  // The node moves to CA B (its next start reads the new files); so does the gateway, by SIGHUP.
  put(files.cert, nodeB.cert);
  put(files.key, nodeB.key);
  put(files.nodesCa, caB.ca);
  gateway.child.kill('SIGHUP');
  await eventually('the gateway reloaded', async () =>
    /"msg":"Reloaded tokens and TLS material"/.test(gateway.logTail) ? true : undefined,
  );
  // A restart makes the gateway connect anew: it must trust CA B now.
  await cluster.kill(0, 'SIGKILL');
  await cluster.startNode(0);
  const appended = await eventually(
    'an append through the gateway after the node restarted',
    async () => {
      const res = await append();
      return res.status === 201 ? res : undefined;
    },
    60_000,
  );
  t.is(appended.status, 201);
});
