/**
 * The handshake's identities: (cluster id, node id, incarnation) travel both ways under the MACs,
 * the v1 handshake of older nodes is named when refused, and over real sockets with the node's own
 * guard (cluster-identity.ts) each side refuses the other with IDENTITY_MISMATCH: a wiped member or
 * another cluster gets no Raft message and no request through, in either direction.
 */
import { silentLogger } from '../../../node/log.js';
import test, { type ExecutionContext } from 'ava';
import { PeerIdentityGuard } from '../../../node/metadata/cluster-identity.js';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import { newIdentityId } from '../../../node/metadata/raft-identity.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import {
  type PeerIdentity,
  type PeerIdentityPolicy,
  PeerAuthMode,
  answerHello,
  decodeAcceptBody,
  decodeProveBody,
  encodeAcceptBody,
  encodeProveBody,
  newPeerNonce,
  verifyAccept,
  verifyProve,
} from '../../../node/transport/peer-auth.js';
import { PeerLink, type PeerLinkOptions, peerRequestOnce } from '../../../node/transport/peer-link.js';
import { PeerServer } from '../../../node/transport/peer-server.js';
import { waitFor } from './helpers.js';

const secret = 'identity secret';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof WalrusError ? err.code : `not a WalrusError: ${String(err)}`;
  }
}

function id(nodeId: number, clusterId: string | null = newIdentityId()): PeerIdentity {
  return { clusterId, nodeId, incarnation: newIdentityId() };
}

// ---- pure ----------------------------------------------------------------------------------------

for (const mode of ['secret', 'open'] as const) {
  test(`${mode}: both identities cross the handshake intact; unknown ids travel as zeros`, (t) => {
    const key = mode === 'secret' ? secret : null;
    const serverNonce = newPeerNonce();
    const client = id(7, null);
    const server = id(2);
    const { prove, clientNonce } = answerHello(key, client, { mode: PeerAuthMode[mode], serverNonce });
    const got = decodeProveBody(encodeProveBody(prove));
    t.deepEqual(
      { clusterId: got.clusterId, nodeId: got.nodeId, incarnation: got.incarnation },
      { clusterId: null, nodeId: 7, incarnation: client.incarnation },
    );
    const accept = decodeAcceptBody(encodeAcceptBody(verifyProve(key, serverNonce, got, server)));
    t.deepEqual(
      { clusterId: accept.clusterId, nodeId: accept.nodeId, incarnation: accept.incarnation },
      server,
    );
    t.notThrows(() => verifyAccept(key, serverNonce, clientNonce, 7, accept));
  });
}

test('with a secret the MACs cover the identities: a changed cluster id, node id or incarnation is refused', (t) => {
  const serverNonce = newPeerNonce();
  const { prove, clientNonce } = answerHello(secret, id(7), { mode: PeerAuthMode.secret, serverNonce });
  for (const forged of [
    { ...prove, clusterId: newIdentityId() },
    { ...prove, clusterId: null },
    { ...prove, incarnation: newIdentityId() },
  ]) {
    t.is(
      codeOf(() => verifyProve(secret, serverNonce, forged, id(2))),
      ErrorCode.UNAUTHENTICATED,
    );
  }
  const accept = verifyProve(secret, serverNonce, prove, id(2));
  for (const forged of [
    { ...accept, clusterId: newIdentityId() },
    { ...accept, nodeId: 3 },
    { ...accept, incarnation: newIdentityId() },
  ]) {
    t.is(
      codeOf(() => verifyAccept(secret, serverNonce, clientNonce, 7, forged)),
      ErrorCode.UNAUTHENTICATED,
    );
  }
});

test('the v1 handshake of an older walrus-node is refused with a message that says so', (t) => {
  for (const [decode, length] of [
    [decodeProveBody, 4 + 1 + 32 + 32],
    [decodeAcceptBody, 1 + 32],
  ] as const) {
    const body = Buffer.alloc(length);
    body.writeUInt32LE(1, 0);
    try {
      decode(body);
      t.fail('decoded a v1 body');
    } catch (error) {
      t.is((error as WalrusError).code, ErrorCode.UNAUTHENTICATED);
      t.regex((error as Error).message, /older walrus-node/);
    }
  }
});

// ---- sockets, with the node's own guard ------------------------------------------------------------

interface Node {
  readonly nodeId: number;
  readonly identity: { clusterId: string | null; incarnation: string };
  readonly state: MetadataState;
  readonly guard: PeerIdentityGuard;
  readonly errors: string[];
}

function makeNode(nodeId: number, clusterId: string | null): Node {
  const identity = { clusterId, incarnation: newIdentityId() };
  const state = new MetadataState();
  const errors: string[] = [];
  const guard = new PeerIdentityGuard({
    nodeId,
    identity,
    state,
    logger: { ...silentLogger, error: (_o, m) => errors.push(m) },
  });
  return { nodeId, identity, state, guard, errors };
}

/** Records `member`'s identity in `at`'s metadata, as its join would have. */
function register(at: Node, member: Node): void {
  at.state.apply(at.state.appliedIndex + 1, {
    type: 'registerNode',
    node: {
      nodeId: member.nodeId,
      raftAddr: 'x:1',
      clientAddr: 'x:2',
      incarnation: member.identity.incarnation,
    },
  });
}

async function serve(t: ExecutionContext, node: Node, identity: PeerIdentityPolicy = node.guard) {
  const messages: number[] = [];
  const requests: number[] = [];
  const warnings: string[] = [];
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterSecret: secret,
    connectionCountMax: 16,
    frameSizeMaxBytes: 1024 * 1024,
    idleTimeoutMs: 60_000,
    identity,
    onMessage: (from) => messages.push(from),
    onRequest: async (from) => {
      requests.push(from);
      return Buffer.from('ok');
    },
    logger: { info: (_o, m) => warnings.push(m), warn: (_o, m) => warnings.push(m), error: () => {} },
  });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  return { server, addr: `127.0.0.1:${port}`, messages, requests, warnings };
}

function linkFrom(t: ExecutionContext, node: Node, o: Partial<PeerLinkOptions> & { addr: string }): PeerLink {
  const l = new PeerLink({
    selfNodeId: node.nodeId,
    clusterSecret: secret,
    queueCountMax: 100,
    queueBytesMax: 1024 * 1024,
    connectTimeoutMs: 5_000,
    requestTimeoutMs: 5_000,
    reconnectBackoffMsMin: 5_000,
    reconnectBackoffMsMax: 5_000,
    identity: node.guard,
    ...o,
  });
  t.teardown(() => l.close());
  return l;
}

async function rejection(p: Promise<unknown>): Promise<WalrusError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof WalrusError) return err;
    throw err;
  }
  throw new Error('expected a rejection');
}

test('members of one cluster under their recorded incarnations talk both ways', async (t) => {
  const cluster = newIdentityId();
  const [a, b] = [makeNode(1, cluster), makeNode(2, cluster)];
  for (const at of [a, b]) for (const m of [a, b]) register(at, m);
  const sb = await serve(t, b);
  const l = linkFrom(t, a, { addr: sb.addr, peerNodeId: 2 });
  l.send(Buffer.from('m'));
  t.is((await l.request(Buffer.from('r'))).toString(), 'ok');
  await waitFor(() => sb.messages.length === 1, 'the message');
  t.deepEqual(sb.requests, [1]);
  t.deepEqual([...a.errors, ...b.errors], []);
});

test('a wiped member (new incarnation, old id) is refused by the server: no message, no join gets through', async (t) => {
  const cluster = newIdentityId();
  const leader = makeNode(1, cluster);
  const old3 = makeNode(3, cluster);
  register(leader, old3);
  const wiped3 = makeNode(3, null); // a wiped node knows no cluster until it joins
  const s = await serve(t, leader);
  const l = linkFrom(t, wiped3, { addr: s.addr });
  l.send(Buffer.from('vote for me'));
  const err = await rejection(l.request(Buffer.from('join')));
  t.is(err.code, ErrorCode.IDENTITY_MISMATCH);
  t.regex(err.message, /walrus-cli remove-node 3/);
  t.false(l.connected);
  // The one-shot join a wiped node sends at start-up fails the same way.
  const join = await rejection(
    peerRequestOnce({
      addr: s.addr,
      selfNodeId: 3,
      clusterSecret: secret,
      identity: wiped3.guard,
      payload: Buffer.from('join'),
      timeoutMs: 5_000,
    }),
  );
  t.is(join.code, ErrorCode.IDENTITY_MISMATCH);
  await waitFor(() => s.server.connectionCount() === 0, 'the server to close both connections');
  t.deepEqual(s.messages, []);
  t.deepEqual(s.requests, []);
  t.true(leader.errors.some((m) => m.startsWith('Refusing node 3')));
});

test('the leader refuses a wiped member that accepts it: the client side checks the server too', async (t) => {
  const cluster = newIdentityId();
  const leader = makeNode(1, cluster);
  register(leader, makeNode(3, cluster));
  const wiped3 = makeNode(3, null); // knows nobody, so it lets everyone in
  const s = await serve(t, wiped3);
  const l = linkFrom(t, leader, { addr: s.addr, peerNodeId: 3 });
  l.send(Buffer.from('append entries'));
  t.is((await rejection(l.request(Buffer.from('x')))).code, ErrorCode.IDENTITY_MISMATCH);
  await waitFor(() => s.server.connectionCount() === 0, 'the connection to close');
  t.deepEqual(s.messages, []);
  t.deepEqual(s.requests, []);
});

test('nodes of different clusters refuse each other, whichever side connects', async (t) => {
  const mine = makeNode(1, newIdentityId());
  const theirs = makeNode(2, newIdentityId()); // e.g. a wiped node 2 restarted without --join
  const s1 = await serve(t, mine);
  const s2 = await serve(t, theirs);
  for (const [from, to] of [
    [theirs, s1],
    [mine, s2],
  ] as const) {
    const err = await rejection(linkFrom(t, from, { addr: to.addr }).request(Buffer.from('x')));
    t.is(err.code, ErrorCode.IDENTITY_MISMATCH);
    t.regex(err.message, /belongs to cluster/);
  }
  t.deepEqual([...s1.requests, ...s2.requests], []);
});

test('a server at the address that is another node than expected is refused', async (t) => {
  const cluster = newIdentityId();
  const a = makeNode(1, cluster);
  const s = await serve(t, makeNode(5, cluster));
  const err = await rejection(linkFrom(t, a, { addr: s.addr, peerNodeId: 4 }).request(Buffer.from('x')));
  t.is(err.code, ErrorCode.IDENTITY_MISMATCH);
  t.regex(err.message, /is node 5, not node 4/);
});

test('a joiner presents the cluster id it learnt on its next connection', async (t) => {
  const cluster = newIdentityId();
  const leader = makeNode(1, cluster);
  const joiner = makeNode(4, null);
  register(leader, joiner);
  const seen: PeerIdentity[] = [];
  const s = await serve(t, leader, {
    self: () => leader.guard.self(),
    check: (peer) => {
      seen.push(peer);
      leader.guard.check(peer);
    },
  });
  const ask = () =>
    peerRequestOnce({
      addr: s.addr,
      selfNodeId: 4,
      clusterSecret: secret,
      identity: joiner.guard,
      payload: Buffer.from('x'),
      timeoutMs: 5_000,
    });
  await ask();
  joiner.identity.clusterId = cluster;
  await ask();
  t.deepEqual(
    seen.map((p) => p.clusterId),
    [null, cluster],
  );
  t.true(seen.every((p) => p.incarnation === joiner.identity.incarnation));
});
