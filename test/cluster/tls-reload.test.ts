/**
 * Issue 12, rotating credentials without a restart, on a real walrus-node process with real TLS
 * (certificates made by openssl, test-certs.ts) and its admin port: SIGHUP makes new client
 * connections see a new certificate from the same CA, then one from a new CA with the CA file
 * rotated too, while a connection opened before keeps working; a reload with a mismatched key
 * keeps the old certificate in service, logs one INVALID_CONFIG line and moves the failure
 * counter; plaintext clients on the client and raft ports are counted as failed handshakes in
 * METRICS JSON and /metrics. A second test rotates a node's client tokens file: the removed token
 * is refused on new connections, the added one works, a connection authenticated before keeps
 * working. Before this change, SIGHUP killed the node (Node's default action).
 */
import { X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { decodeReply, encodeRequest } from '../../node/protocol/binary-codec.js';
import { ErrorCode, type WalrusError } from '../../node/protocol/error-codes.js';
import { eventually } from '../helpers/eventually.js';
import { freePort, LocalCluster, tempDir } from '../helpers/local-cluster.js';
import { frame, portOf, splitFrames } from '../helpers/raw-socket.js';
import { makeTestCa } from '../helpers/test-certs.js';
import { writeTokensFile } from '../helpers/tokens-file.js';

const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;

/** The fingerprint of the certificate a NEW TLS connection to `port` is shown; null if refused. */
function servedFingerprint(port: number, ca: string): Promise<string | null> {
  return new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.destroy();
    });
    socket.once('error', () => resolve(null));
  });
}

/** A TLS connection kept open across reloads; `ping()` sends one binary request over it. */
async function openPinger(port: number, ca: string) {
  const socket = await new Promise<tls.TLSSocket>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ca }, () => resolve(s));
    s.once('error', reject);
  });
  let requestId = 0;
  return {
    socket,
    ping(): Promise<string> {
      requestId += 1;
      const id = requestId;
      return new Promise((resolve, reject) => {
        let data = Buffer.alloc(0);
        const onData = (chunk: Buffer): void => {
          data = Buffer.concat([data, chunk]);
          const frames = splitFrames(data);
          if (frames.length === 0) return;
          socket.off('data', onData);
          const reply = decodeReply(frames[0]!);
          resolve(`${reply.kind}:${reply.requestId}`);
        };
        socket.on('data', onData);
        socket.once('error', reject);
        socket.write(frame(encodeRequest(id, { op: 'ping' })));
      });
    },
  };
}

/** Connects without TLS, writes a binary ping and waits for the server to close. */
function plaintextProbe(port: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () =>
      socket.write(frame(encodeRequest(1, { op: 'ping' }))),
    );
    socket.on('error', () => {});
    socket.on('close', () => resolve());
  });
}

interface SecurityJson {
  tls_handshake_failures: { client: number; raft: number };
  reloads_succeeded: number;
  reloads_failed: number;
  last_reload_succeeded: boolean;
}

async function securityOf(addr: string, ca: string, token?: string): Promise<SecurityJson> {
  const c = new WalrusClient({
    nodes: [addr],
    tls: { ca },
    retryCountMax: 0,
    requestTimeoutMs: 5_000,
    ...(token === undefined ? {} : { token }),
  });
  try {
    return ((await c.metrics()) as { security: SecurityJson }).security;
  } finally {
    await c.close();
  }
}

async function scrape(adminPort: number): Promise<string> {
  return (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
}

/** The value of one series in exposition text (labels as written, sorted by prom-client). */
function sample(text: string, series: string): number | null {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? null : Number(line.slice(series.length + 1));
}

/** The node's TLS files in `dir`, and how a test replaces them: each file whole (rename), as an operator's tooling should. */
function tlsFiles(dir: string) {
  const files = {
    cert: path.join(dir, 'cert.pem'),
    key: path.join(dir, 'key.pem'),
    ca: path.join(dir, 'ca.pem'),
  };
  const install = (cert: string, key: string, ca: string): void => {
    for (const [file, text] of [
      [files.cert, cert],
      [files.key, key],
      [files.ca, ca],
    ] as const) {
      fs.writeFileSync(`${file}.tmp`, text);
      fs.renameSync(`${file}.tmp`, file);
    }
  };
  return { files, install };
}

test('SIGHUP rotates a node certificate (same CA, then new CA) for new connections; a broken reload changes nothing', async (t) => {
  const caA = makeTestCa('reload-a');
  const caB = makeTestCa('reload-b');
  const certs = { a1: caA.issue('a1'), a2: caA.issue('a2'), b1: caB.issue('b1') };
  const dir = tempDir('tls-reload');
  const { files, install } = tlsFiles(dir);
  install(certs.a1.cert, certs.a1.key, caA.ca);
  const adminPort = await freePort();
  const cluster = await LocalCluster.start({
    nodeCount: 1,
    dataDir: path.join(dir, 'data'),
    adminPorts: [adminPort],
    env: { WALRUS_LOG_LEVEL: 'info' },
    extraArgs: ['--tls-cert', files.cert, '--tls-key', files.key, '--tls-ca', files.ca, '--peer-mtls'],
    clientTls: { ca: caA.ca },
  });
  const node = cluster.nodes[0]!;
  const clientPort = portOf(node.clientAddr);
  const raftPort = portOf(node.raftAddr);
  const pinger = await openPinger(clientPort, caA.ca);
  t.teardown(async () => {
    pinger.socket.destroy();
    await cluster.stop();
    caA.remove();
    caB.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const sighup = (): void => {
    node.process!.kill('SIGHUP');
  };
  const reloadLines = (): string[] => node.logTail.split('\n').filter((l) => /"msg":"Reload/.test(l));

  t.is(await servedFingerprint(clientPort, caA.ca), fingerprintOf(certs.a1.cert));
  t.is(await pinger.ping(), 'response:1');

  // 1. A new certificate from the same CA.
  install(certs.a2.cert, certs.a2.key, caA.ca);
  sighup();
  await eventually('the new certificate served', async () =>
    (await servedFingerprint(clientPort, caA.ca)) === fingerprintOf(certs.a2.cert) ? true : undefined,
  );
  // The raft port too (TLS 1.3: the server checks the missing client certificate after this).
  t.is(await servedFingerprint(raftPort, caA.ca), fingerprintOf(certs.a2.cert));
  t.is(await pinger.ping(), 'response:2', 'a connection opened before the reload keeps working');
  t.is(pinger.socket.getPeerCertificate().fingerprint256, fingerprintOf(certs.a1.cert));
  await eventually('one info line', async () => (reloadLines().length === 1 ? true : undefined));
  t.regex(reloadLines()[0]!, /"level":"info".*"msg":"Reloaded TLS material and client tokens"/);
  t.true(reloadLines()[0]!.includes(fingerprintOf(certs.a2.cert)));

  // 2. A broken reload: the new CA's certificate with the old key. Nothing changes.
  install(certs.b1.cert, certs.a2.key, caB.ca);
  sighup();
  await eventually('one error line', async () => (reloadLines().length === 2 ? true : undefined));
  t.regex(reloadLines()[1]!, /"level":"error".*"code":"INVALID_CONFIG".*not the certificate/);
  t.is(
    await servedFingerprint(clientPort, caA.ca),
    fingerprintOf(certs.a2.cert),
    'the old certificate stays',
  );
  const afterFailure = await securityOf(node.clientAddr, caA.ca);
  t.like(afterFailure, { reloads_succeeded: 1, reloads_failed: 1, last_reload_succeeded: false });
  const text = await scrape(adminPort);
  t.is(sample(text, 'walrus_config_reloads_total{result="failure",node_id="1"}'), 1, text);
  t.is(sample(text, 'walrus_config_reloads_total{result="success",node_id="1"}'), 1);
  t.is(sample(text, 'walrus_config_last_reload_successful{node_id="1"}'), 0);

  // 3. A certificate from a new CA, with the CA file rotated too.
  install(certs.b1.cert, certs.b1.key, caB.ca);
  sighup();
  await eventually('the new CA’s certificate served', async () =>
    (await servedFingerprint(clientPort, caB.ca)) === fingerprintOf(certs.b1.cert) ? true : undefined,
  );
  t.is(await servedFingerprint(clientPort, caA.ca), null, 'a client trusting only the old CA refuses it');
  t.is(await pinger.ping(), 'response:3', 'the connection opened first still works');
  const client = new WalrusClient({ nodes: [node.clientAddr], tls: { ca: caB.ca }, retryCountMax: 0 });
  t.teardown(() => client.close());
  await client.createTopic('after-rotation');
  t.is((await client.append('after-rotation', [{ value: Buffer.from('x') }])).lastOffset, 0);

  // 4. Plaintext clients on both TLS ports: failed handshakes, counted per listener.
  const before = await securityOf(node.clientAddr, caB.ca);
  await plaintextProbe(clientPort);
  await plaintextProbe(raftPort);
  await plaintextProbe(raftPort);
  const counted = await eventually('the failed handshakes counted', async () => {
    const s = await securityOf(node.clientAddr, caB.ca);
    return s.tls_handshake_failures.client >= before.tls_handshake_failures.client + 1 &&
      s.tls_handshake_failures.raft >= before.tls_handshake_failures.raft + 2
      ? s
      : undefined;
  });
  t.like(counted, { reloads_succeeded: 2, reloads_failed: 1, last_reload_succeeded: true });
  const final = await scrape(adminPort);
  t.true(
    (sample(final, 'walrus_tls_handshake_failures_total{listener="client",node_id="1"}') ?? 0) >= 1,
    final,
  );
  t.true((sample(final, 'walrus_tls_handshake_failures_total{listener="raft",node_id="1"}') ?? 0) >= 2);
  t.regex(final, /# HELP walrus_tls_handshake_failures_total TLS handshakes refused/);
  t.is(sample(final, 'walrus_config_last_reload_successful{node_id="1"}'), 1);
});

test('SIGHUP rotates a node’s client tokens: the removed token is refused, the added one works', async (t) => {
  const ca = makeTestCa('reload-tokens');
  const cert = ca.issue('node');
  const dir = tempDir('tokens-reload');
  const tokensFile = path.join(dir, 'tokens.json');
  const writeTokens = (...tokens: string[]): void => writeTokensFile(tokensFile, tokens, ['admin']);
  writeTokens('old-token-0001');
  const cluster = await LocalCluster.start({
    nodeCount: 1,
    dataDir: path.join(dir, 'data'),
    env: { WALRUS_LOG_LEVEL: 'info' },
    extraArgs: ['--client-tokens-file', tokensFile, '--tls-cert', cert.certFile, '--tls-key', cert.keyFile],
    clientTls: { ca: ca.ca },
  });
  const clients: WalrusClient[] = [];
  const clientWith = (token: string): WalrusClient => {
    const c = new WalrusClient({ nodes: cluster.clientAddrs, tls: { ca: ca.ca }, token, retryCountMax: 0 });
    clients.push(c);
    return c;
  };
  t.teardown(async () => {
    for (const c of clients) await c.close();
    await cluster.stop();
    ca.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const node = cluster.nodes[0]!;
  const refusal = (c: WalrusClient): Promise<string | null> =>
    c.ping().then(
      () => null,
      (e: WalrusError) => e.code,
    );

  const early = clientWith('old-token-0001');
  await eventually('the old token works', async () => ((await refusal(early)) === null ? true : undefined));
  writeTokens('new-token-0001');
  node.process!.kill('SIGHUP');
  await eventually('the new token accepted', async () =>
    (await refusal(clientWith('new-token-0001'))) === null ? true : undefined,
  );
  t.is(await refusal(clientWith('old-token-0001')), ErrorCode.UNAUTHENTICATED, 'removed token refused');
  t.is(await refusal(early), null, 'a connection authenticated before the reload keeps working');

  // A token file that does not parse: nothing changes, the failure is counted.
  fs.writeFileSync(tokensFile, '{"tokens": [');
  node.process!.kill('SIGHUP');
  const failed = await eventually('the failed reload counted', async () => {
    const s = await securityOf(node.clientAddr, ca.ca, 'new-token-0001');
    return s.reloads_failed === 1 ? s : undefined;
  });
  t.like(failed, { reloads_succeeded: 1, last_reload_succeeded: false });
  t.is(await refusal(clientWith('new-token-0001')), null, 'the previous tokens stay in force');
  t.regex(node.logTail, /"level":"error".*"code":"INVALID_CONFIG".*client-tokens-file/);
  t.true(node.process!.exitCode === null && node.process!.signalCode === null, 'the node still runs');
});

test('after SIGHUP to a new CA, peer links made afterwards use it both ways (a restarted peer rejoins)', async (t) => {
  const caA = makeTestCa('peers-a');
  const caB = makeTestCa('peers-b');
  const nodeA = caA.issue('node');
  const nodeB = caB.issue('node');
  const dir = tempDir('peer-reload');
  const { files, install } = tlsFiles(dir);
  install(nodeA.cert, nodeA.key, caA.ca);
  // Clients (and the launcher's start-up probe) trust both CAs throughout.
  const trust = `${caA.ca}\n${caB.ca}`;
  const cluster = await LocalCluster.start({
    nodeCount: 3,
    dataDir: path.join(dir, 'data'),
    env: { WALRUS_LOG_LEVEL: 'info' },
    extraArgs: ['--tls-cert', files.cert, '--tls-key', files.key, '--tls-ca', files.ca, '--peer-mtls'],
    clientTls: { ca: trust },
  });
  const client = new WalrusClient({ nodes: cluster.clientAddrs, tls: { ca: trust } });
  t.teardown(async () => {
    await client.close();
    await cluster.stop();
    caA.remove();
    caB.remove();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  type Metrics = {
    last_applied: number;
    current_leader: number | null;
    membership_config: { voters: number[] };
  };
  const metricsOf = async (index: number): Promise<Metrics | undefined> => {
    const one = new WalrusClient({
      nodes: [cluster.nodes[index]!.clientAddr],
      tls: { ca: trust },
      retryCountMax: 0,
    });
    try {
      return (await one.metrics()) as Metrics;
    } catch {
      return undefined;
    } finally {
      await one.close();
    }
  };
  await eventually('three voters and a leader', async () => {
    const m = await metricsOf(0);
    return m?.membership_config.voters.length === 3 && m.current_leader ? true : undefined;
  });
  await eventually('create before', () => client.createTopic('before-rotation'));

  // Every node moves to the new CA at once; the peer connections open now keep their sessions.
  install(nodeB.cert, nodeB.key, caB.ca);
  for (const node of cluster.nodes) node.process!.kill('SIGHUP');
  for (const node of cluster.nodes)
    await eventually('reloaded', async () => (/Reloaded TLS material/.test(node.logTail) ? true : undefined));

  // Node 3 restarts: every link to and from it is new, and must use CA B on both sides.
  await cluster.kill(2, 'SIGKILL');
  await cluster.startNode(2);
  await eventually('create after', () => client.createTopic('after-rotation'));
  const leaderApplied = await eventually('the leader applied it', async () => {
    for (const i of [0, 1, 2]) {
      const m = await metricsOf(i);
      if (m !== undefined && m.current_leader === i + 1) return m.last_applied;
    }
    return undefined;
  });
  await eventually(
    'the restarted node catches up over new peer links',
    async () => (((await metricsOf(2))?.last_applied ?? 0) >= leaderApplied ? true : undefined),
    60_000,
  );
  const restarted = new WalrusClient({ nodes: [cluster.nodes[2]!.clientAddr], tls: { ca: caB.ca } });
  t.teardown(() => restarted.close());
  await eventually('the new topic through node 3', async () =>
    (await restarted.append('after-rotation', [{ value: Buffer.from('x') }])).lastOffset >= 0
      ? true
      : undefined,
  );
  t.pass();
});
