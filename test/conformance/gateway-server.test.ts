/**
 * The walrus-gateway binary itself: HTTPS with --tls-cert/--tls-key, bearer tokens from a file,
 * a slow client cut off by the headers timeout, bad flags refused with exit code 2, and the loud
 * warning of an open gateway.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { Agent, fetch as undiciFetch } from 'undici';
import { GatewayProcess, gatewayBin } from '../helpers/gateway-process.js';
import { startLocalCluster, type TestCluster } from '../helpers/local-cluster.js';

let cluster: TestCluster;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-gw-server-'));

test.before(async () => {
  cluster = await startLocalCluster({ nodeCount: 1 });
});

test.after.always(async () => {
  await cluster?.destroy();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('HTTPS with a certificate and key, and tokens from a file', async (t) => {
  const key = path.join(dir, 'key.pem');
  const cert = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
    ],
    {
      stdio: 'ignore',
    },
  );
  const tokens = path.join(dir, 'tokens.json');
  fs.writeFileSync(tokens, JSON.stringify({ tokens: [{ token: 'tls-admin-token', scopes: ['admin'] }] }));
  const gateway = await GatewayProcess.start({
    nodes: cluster.clientAddrs,
    extraArgs: ['--tls-cert', cert, '--tls-key', key, '--tokens-file', tokens],
  });
  t.teardown(() => gateway.stop());
  t.notRegex(gateway.logTail, /gateway is open/i);
  const dispatcher = new Agent({ connect: { rejectUnauthorized: false } });
  const url = `https://127.0.0.1:${gateway.port}`;
  const anonymous = await undiciFetch(`${url}/v1/topics`, { dispatcher });
  t.is(anonymous.status, 401);
  const created = await undiciFetch(`${url}/v1/topics`, {
    dispatcher,
    method: 'POST',
    headers: { authorization: 'Bearer tls-admin-token', 'content-type': 'application/json' },
    body: '{"name":"tls"}',
  });
  t.is(created.status, 201);
  await dispatcher.close();
});

test('a client that sends its headers too slowly is cut off', async (t) => {
  const gateway = await GatewayProcess.start({ nodes: cluster.clientAddrs });
  t.teardown(() => gateway.stop());
  t.regex(gateway.logTail, /NO TOKENS CONFIGURED: this gateway is OPEN/);
  const socket = net.connect(gateway.port, '127.0.0.1');
  await once(socket, 'connect');
  let answer = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    answer += d;
  });
  // The gateway answers 408 and closes while we may still be writing: a write after its close can
  // come back as a reset, which is part of being cut off, not a failure.
  socket.on('error', () => {});
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write('GET /v1/health HTTP/1.1\r\nHost: x\r\n');
  // Trickle a header line now and then, never finishing the head.
  const trickle = setInterval(() => {
    if (!socket.destroyed) socket.write('X-Slow: 1\r\n');
  }, 1_000);
  // Whatever happens, the timer must not keep the test worker alive.
  t.teardown(() => {
    clearInterval(trickle);
    socket.destroy();
  });
  const started = Date.now();
  await closed;
  clearInterval(trickle);
  const heldMs = Date.now() - started;
  t.regex(answer, /^HTTP\/1\.1 408/);
  t.true(heldMs < 20_000, `held for ${heldMs} ms`);
  t.is((await fetch(`${gateway.url}/v1/health`)).status, 200);
});

test('bad flags exit with code 2 and a usage line', (t) => {
  for (const args of [
    ['--port', 'x'],
    ['--nodes', 'not an address'],
    ['--bogus', '1'],
    ['--tls-cert', 'a.pem'],
  ]) {
    const result = spawnSync(process.execPath, [gatewayBin, ...args], { encoding: 'utf8', timeout: 10_000 });
    t.is(result.status, 2, args.join(' '));
    t.true(result.stderr.length > 0);
  }
});
