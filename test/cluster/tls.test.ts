/**
 * Issue 11 §4, TLS on the client and raft ports with mutual TLS between peers, with certificates
 * made in the test (test-certs.ts, openssl): a TLS cluster of three forms and serves appends and
 * reads through every node, with the gateway's token on top; a plaintext client is refused on a
 * TLS client port; a joining node whose certificate comes from another CA is refused by the
 * members (it never becomes one).
 */
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { ErrorCode, type WalrusError } from '../../node/protocol/error-codes.js';
import { encodeRequest } from '../../node/protocol/binary-codec.js';
import { eventually } from '../helpers/eventually.js';
import { startLocalCluster } from '../helpers/local-cluster.js';
import type { NodeMetrics } from '../helpers/node-text.js';
import { frame, portOf, rawExchange, splitFrames } from '../helpers/raw-socket.js';
import { runCli } from '../helpers/cli.js';
import { makeTestCa } from '../helpers/test-certs.js';

async function metricsOf(addr: string, ca: string): Promise<NodeMetrics | null> {
  const c = new WalrusClient({ nodes: [addr], tls: { ca }, retryCountMax: 0, requestTimeoutMs: 2_000 });
  try {
    return (await c.request({ op: 'metrics' })).metrics as NodeMetrics;
  } catch {
    return null;
  } finally {
    await c.close();
  }
}

test('a mutual-TLS cluster forms and serves; plaintext clients and peers of another CA are refused', async (t) => {
  const ca = makeTestCa('good');
  const otherCa = makeTestCa('other');
  const node = ca.issue('node');
  const stranger = otherCa.issue('stranger');
  const tlsArgs = [
    '--tls-cert',
    node.certFile,
    '--tls-key',
    node.keyFile,
    '--tls-ca',
    ca.caFile,
    '--peer-mtls',
  ];
  const cluster = await startLocalCluster({
    nodeCount: 3,
    extraArgs: tlsArgs,
    clientTls: { ca: ca.ca },
  });
  const client = new WalrusClient({ nodes: cluster.clientAddrs, tls: { ca: ca.ca } });
  t.teardown(async () => {
    await client.close();
    await cluster.destroy();
    ca.remove();
    otherCa.remove();
  });

  await eventually('three voters over TLS', async () => {
    const m = await metricsOf(cluster.clientAddrs[0]!, ca.ca);
    return m !== null && m.membership_config.voters.length === 3 && m.current_leader ? true : undefined;
  });
  await client.createTopic('tls-topic');
  const values = ['a', 'b', 'c', 'd'];
  for (const v of values) await client.append('tls-topic', [{ value: Buffer.from(v) }]);
  for (const addr of cluster.clientAddrs) {
    const one = new WalrusClient({ nodes: [addr], tls: { ca: ca.ca } });
    const page = await one.read('tls-topic', 0);
    await one.close();
    t.deepEqual(
      page.records.map((r) => Buffer.from(r.value).toString()),
      values,
      `read through ${addr}`,
    );
  }

  // A plaintext client on a TLS client port: no reply frame, the connection is closed.
  const plain = await rawExchange(portOf(cluster.clientAddrs[0]!), [frame(encodeRequest(1, { op: 'ping' }))]);
  t.true(plain.closed);
  t.true(
    splitFrames(plain.data).every((f) => f[0] !== 0xb1),
    'no binary reply to a plaintext request',
  );
  const plainClient = new WalrusClient({ nodes: [cluster.clientAddrs[0]!], retryCountMax: 0 });
  const refused = await plainClient.ping().then(
    () => null,
    (e: WalrusError) => e,
  );
  await plainClient.close();
  t.is(refused?.code, ErrorCode.UNAVAILABLE, `plaintext ping: ${refused?.message}`);

  // A client that does not trust the nodes' CA refuses them.
  const distrustful = new WalrusClient({
    nodes: [cluster.clientAddrs[0]!],
    tls: { ca: otherCa.ca },
    retryCountMax: 0,
  });
  const untrusted = await distrustful.ping().then(
    () => null,
    (e: WalrusError) => e,
  );
  await distrustful.close();
  t.is(untrusted?.code, ErrorCode.UNAVAILABLE);

  // A joining node with a certificate from another CA: the members refuse its handshake.
  const index = await cluster.addNode({
    extraArgs: ['--tls-cert', stranger.certFile, '--tls-key', stranger.keyFile],
    waitForListen: false,
  });
  await eventually(
    'the stranger retrying its join',
    async () => (/Failed to join cluster; retrying/.test(cluster.nodes[index]!.logTail) ? true : undefined),
    60_000,
  );
  const joinLine = /.*Failed to join cluster; retrying.*/.exec(cluster.nodes[index]!.logTail)?.[0] ?? '';
  // Refused in the TLS handshake (UNAVAILABLE), before any cluster-secret check (UNAUTHENTICATED).
  t.regex(joinLine, /"code":"UNAVAILABLE".*handshake/);
  const m = await metricsOf(cluster.clientAddrs[0]!, ca.ca);
  t.deepEqual(m?.membership_config.voters, [1, 2, 3]);
  t.deepEqual(m?.membership_config.learners, []);
  t.false(m?.membership_config.nodes.includes(4), 'the stranger is no member');
});

test('walrus-cli runs the operator and admin commands against a mutual-TLS cluster with --tls-ca/--tls-cert/--tls-key', async (t) => {
  const ca = makeTestCa('cli');
  const node = ca.issue('node');
  const operator = ca.issue('operator');
  const cluster = await startLocalCluster({
    nodeCount: 3,
    extraArgs: ['--tls-cert', node.certFile, '--tls-key', node.keyFile, '--tls-ca', ca.caFile, '--peer-mtls'],
    clientTls: { ca: ca.ca },
  });
  t.teardown(async () => {
    await cluster.destroy();
    ca.remove();
  });
  const addr = cluster.clientAddrs[0]!;
  await eventually('three voters over TLS', async () => {
    const m = await metricsOf(addr, ca.ca);
    return m !== null && m.membership_config.voters.length === 3 && m.current_leader ? true : undefined;
  });
  const tlsFlags = ['--tls-ca', ca.caFile, '--tls-cert', operator.certFile, '--tls-key', operator.keyFile];
  const status = await runCli(['--addr', addr, ...tlsFlags, '--json', 'status']);
  t.is(status.code, 0, status.stderr);
  t.is((JSON.parse(status.stdout) as { members: unknown[] }).members.length, 3);
  // Without TLS settings the CLI cannot reach a TLS port: a clear failure, not a hang.
  const plain = await runCli(['--addr', addr, '--timeout-ms', '3000', 'remove-node', '3']);
  t.is(plain.code, 1, plain.stdout);
  const removed = await runCli(['--addr', addr, ...tlsFlags, 'remove-node', '3']);
  t.is(removed.code, 0, removed.stderr);
  t.regex(removed.stdout, /OK node 3 removed/);
  await eventually('two voters', async () => {
    const m = await metricsOf(addr, ca.ca);
    return m?.membership_config.voters.length === 2 ? true : undefined;
  });
  const half = await runCli(['--addr', addr, '--tls-cert', operator.certFile, 'status']);
  t.is(half.code, 2, 'a certificate without its key is a usage error');
});
