/**
 * The peer handshake: the pure challenge-response (wrong secret, mode mismatch, replay, reflection,
 * garbage bodies) and the raft port over real loopback sockets, where a stranger, a wrong secret or
 * replayed bytes get UNAUTHENTICATED and a close, the callbacks never run, and real peers keep
 * being served.
 */
import test, { type ExecutionContext } from 'ava';
import fc from 'fast-check';
import { encodeRequest } from '../../../node/protocol/binary-codec.js';
import { readErrorBody } from '../../../node/protocol/binary-bodies.js';
import { BinaryFlag, PeerOpcode } from '../../../node/protocol/binary-header.js';
import { ByteReader } from '../../../node/protocol/byte-io.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { encodeFrame, isBinaryFrame } from '../../../node/protocol/frame.js';
import {
  anonymousIdentityPolicy,
  answerHello,
  decodeAcceptBody,
  decodeHelloBody,
  decodeProveBody,
  encodeProveBody,
  newPeerNonce,
  PeerAuthMode,
  verifyAccept,
  verifyProve,
} from '../../../node/transport/peer-auth.js';
import { PeerLink, type PeerLinkOptions } from '../../../node/transport/peer-link.js';
import { PeerServer, type PeerServerOptions } from '../../../node/transport/peer-server.js';
import { decodePeerHeader, encodePeerFrame, peerBody } from '../../../node/transport/peer-wire.js';
import { RawClient, waitFor } from './helpers.js';

const secret = 'correct horse battery staple';
/** A handshake identity with no ids (identity checks are in peer-identity.test.ts). */
const anon = (nodeId: number) => anonymousIdentityPolicy(nodeId).self();

// ---- pure ----------------------------------------------------------------------------------------

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return err instanceof WalrusError ? err.code : `not a WalrusError: ${String(err)}`;
  }
}

test('same secret: both proofs verify; the server proof is bound to this connection', (t) => {
  const serverNonce = newPeerNonce();
  const { prove, clientNonce } = answerHello(secret, anon(7), { mode: PeerAuthMode.secret, serverNonce });
  const accept = verifyProve(secret, serverNonce, decodeProveBody(encodeProveBody(prove)));
  t.notThrows(() => verifyAccept(secret, serverNonce, clientNonce, 7, accept));
  t.is(
    codeOf(() => verifyAccept(secret, serverNonce, newPeerNonce(), 7, accept)),
    ErrorCode.UNAUTHENTICATED,
    'a server proof for another client nonce is refused',
  );
  t.is(
    codeOf(() => verifyAccept('other', serverNonce, clientNonce, 7, accept)),
    ErrorCode.UNAUTHENTICATED,
  );
});

test('wrong secret, replayed proof, changed node id, reflected server proof and mode mismatch are refused', (t) => {
  const serverNonce = newPeerNonce();
  const hello = { mode: PeerAuthMode.secret, serverNonce };
  const { prove } = answerHello('wrong secret', anon(7), hello);
  t.is(
    codeOf(() => verifyProve(secret, serverNonce, prove)),
    ErrorCode.UNAUTHENTICATED,
  );
  const good = answerHello(secret, anon(7), hello).prove;
  t.is(
    codeOf(() => verifyProve(secret, newPeerNonce(), good)),
    ErrorCode.UNAUTHENTICATED,
    'replay',
  );
  t.is(
    codeOf(() => verifyProve(secret, serverNonce, { ...good, nodeId: 8 })),
    ErrorCode.UNAUTHENTICATED,
  );
  const accept = verifyProve(secret, serverNonce, good);
  t.is(
    codeOf(() => verifyProve(secret, serverNonce, { ...good, mac: accept.mac })),
    ErrorCode.UNAUTHENTICATED,
    'the server proof is not a client proof',
  );
  t.is(
    codeOf(() => answerHello(null, anon(7), hello)),
    ErrorCode.UNAUTHENTICATED,
    'open client, secret server',
  );
  t.is(
    codeOf(() => answerHello(secret, anon(7), { mode: PeerAuthMode.open, serverNonce })),
    ErrorCode.UNAUTHENTICATED,
  );
  const open = answerHello(null, anon(7), { mode: PeerAuthMode.open, serverNonce }).prove;
  t.is(
    codeOf(() => verifyProve(secret, serverNonce, open)),
    ErrorCode.UNAUTHENTICATED,
    'secret server, open client',
  );
  t.is(
    codeOf(() => verifyProve(null, serverNonce, good)),
    ErrorCode.UNAUTHENTICATED,
    'open server, secret client',
  );
  t.is(verifyProve(null, serverNonce, open).mode, PeerAuthMode.open);
  t.is(
    codeOf(() => verifyProve(null, serverNonce, { ...open, nodeId: 0 })),
    ErrorCode.UNAUTHENTICATED,
  );
});

test('handshake bodies: any bytes decode or fail UNAUTHENTICATED, never anything else', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 160 }), (bytes) => {
      const b = Buffer.from(bytes);
      for (const decode of [decodeHelloBody, decodeProveBody, decodeAcceptBody]) {
        const code = codeOf(() => decode(b));
        if (code !== undefined && code !== ErrorCode.UNAUTHENTICATED) return false;
      }
      return true;
    }),
  );
  t.pass();
});

// ---- sockets -------------------------------------------------------------------------------------

interface Peer {
  readonly server: PeerServer;
  readonly port: number;
  readonly addr: string;
  readonly messages: { from: number; text: string }[];
  readonly requests: { from: number; text: string }[];
  readonly warnings: string[];
}

async function startPeer(
  t: ExecutionContext,
  clusterSecret: string | null,
  overrides: Partial<PeerServerOptions> = {},
): Promise<Peer> {
  const messages: { from: number; text: string }[] = [];
  const requests: { from: number; text: string }[] = [];
  const warnings: string[] = [];
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterSecret,
    connectionCountMax: 16,
    frameSizeMaxBytes: 1024 * 1024,
    idleTimeoutMs: 60_000,
    onMessage: (from, payload) => messages.push({ from, text: payload.toString() }),
    onRequest: async (from, payload) => {
      requests.push({ from, text: payload.toString() });
      return Buffer.from(`re:${payload.toString()}`);
    },
    logger: { info() {}, warn: (_o, m) => warnings.push(m), error: (_o, m) => warnings.push(m) },
    ...overrides,
  });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  return { server, port, addr: `127.0.0.1:${port}`, messages, requests, warnings };
}

function link(t: ExecutionContext, o: Partial<PeerLinkOptions> & { addr: string }): PeerLink {
  const l = new PeerLink({
    selfNodeId: 1,
    clusterSecret: secret,
    queueCountMax: 1000,
    queueBytesMax: 1024 * 1024,
    connectTimeoutMs: 5_000,
    requestTimeoutMs: 10_000,
    reconnectBackoffMsMin: 20,
    reconnectBackoffMsMax: 200,
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

/** The code of an error frame: binary error reply or text ERR. */
function errorCodeOfFrame(frame: Buffer): string {
  if (!isBinaryFrame(frame)) return frame.toString().split(' ')[1] ?? '?';
  const h = decodePeerHeader(frame);
  if ((h.flags & BinaryFlag.ERROR) === 0) return `not an error: opcode 0x${h.opcode.toString(16)}`;
  return readErrorBody(new ByteReader(peerBody(frame))).code;
}

test('same secret: node ids, one-way messages and requests in both directions', async (t) => {
  const a = await startPeer(t, secret);
  const b = await startPeer(t, secret);
  const aToB = link(t, { selfNodeId: 1, addr: b.addr });
  const bToA = link(t, { selfNodeId: 2, addr: a.addr });
  aToB.send(Buffer.from('vote for 1'));
  bToA.send(Buffer.from('vote for 2'));
  t.is((await aToB.request(Buffer.from('join 1'))).toString(), 're:join 1');
  t.is((await bToA.request(Buffer.from('join 2'))).toString(), 're:join 2');
  await waitFor(() => a.messages.length === 1 && b.messages.length === 1, 'both messages');
  t.deepEqual(b.messages, [{ from: 1, text: 'vote for 1' }]);
  t.deepEqual(a.messages, [{ from: 2, text: 'vote for 2' }]);
  t.deepEqual(b.requests, [{ from: 1, text: 'join 1' }]);
  t.deepEqual(a.requests, [{ from: 2, text: 'join 2' }]);
  t.true(aToB.connected && bToA.connected);
});

test('open cluster on both sides: the handshake still carries the node id', async (t) => {
  const p = await startPeer(t, null);
  const l = link(t, { selfNodeId: 42, addr: p.addr, clusterSecret: null });
  t.is((await l.request(Buffer.from('x'))).toString(), 're:x');
  t.deepEqual(p.requests, [{ from: 42, text: 'x' }]);
});

for (const [name, serverSecret, linkSecret] of [
  ['wrong secret', secret, 'not the secret'],
  ['secret server, open peer', secret, null],
  ['open server, peer with a secret', null, secret],
] as const) {
  test(`${name}: UNAUTHENTICATED on the link, a close on the server, no callback runs`, async (t) => {
    const p = await startPeer(t, serverSecret);
    const l = link(t, {
      addr: p.addr,
      clusterSecret: linkSecret,
      reconnectBackoffMsMin: 5_000,
      reconnectBackoffMsMax: 5_000,
    });
    l.send(Buffer.from('injected raft message'));
    const err = await rejection(l.request(Buffer.from('join')));
    t.is(err.code, ErrorCode.UNAUTHENTICATED);
    t.false(l.connected);
    await waitFor(() => p.server.connectionCount() === 0, 'the server to close the connection');
    t.true(p.warnings.some((w) => w.startsWith('refusing peer connection')));
    // While backing off after the refusal, requests fail fast with the same code.
    t.is((await rejection(l.request(Buffer.from('again')))).code, ErrorCode.UNAUTHENTICATED);
    t.deepEqual(p.messages, []);
    t.deepEqual(p.requests, []);
  });
}

test('strangers on the raft port get one framed UNAUTHENTICATED and a close; real peers keep working', async (t) => {
  const p = await startPeer(t, secret, { handshakeTimeoutMs: 300 });
  const strangers: [string, Buffer | string, 'text' | 'binary'][] = [
    ['framed text command', '\x07\x00\x00\x00METRICS', 'text'],
    ['unframed text', 'PUT topic hello\r\n', 'text'],
    ['garbage', Buffer.from([0xde, 0xad, 0xbe, 0xef, 1, 2, 3]), 'text'],
    ['client-port binary request', encodeFrame(encodeRequest(9, { op: 'ping' })), 'binary'],
    [
      'raft message before the handshake',
      encodePeerFrame(PeerOpcode.raftMessage, 0, 0, Buffer.from('m')),
      'binary',
    ],
    ['silence', '', 'text'],
  ];
  for (const [name, bytes, form] of strangers) {
    const c = await RawClient.connect(p.port);
    t.teardown(() => c.destroy());
    const hello = await c.frame(0);
    t.is(decodePeerHeader(hello).opcode, PeerOpcode.authHello, name);
    if (bytes.length > 0) c.write(bytes);
    const reply = await c.frame(1);
    t.is(isBinaryFrame(reply) ? 'binary' : 'text', form, name);
    t.is(errorCodeOfFrame(reply), ErrorCode.UNAUTHENTICATED, name);
    if (form === 'text') t.regex(reply.toString(), /^ERR UNAUTHENTICATED /, name);
    await c.waitClosed();
    t.is(c.frames.length, 2, `${name}: exactly one error after the hello`);
  }
  const l = link(t, { selfNodeId: 3, addr: p.addr });
  t.is((await l.request(Buffer.from('still here'))).toString(), 're:still here');
  t.deepEqual(p.messages, []);
  t.deepEqual(p.requests, [{ from: 3, text: 'still here' }]);
});

test('the bytes of a captured good handshake are refused when replayed on a new connection', async (t) => {
  const p = await startPeer(t, secret);
  const good = await RawClient.connect(p.port);
  t.teardown(() => good.destroy());
  const hello = decodeHelloBody(peerBody(await good.frame(0)));
  const { prove } = answerHello(secret, anon(5), hello);
  const captured = encodePeerFrame(PeerOpcode.authProve, 0, 0, encodeProveBody(prove));
  good.write(captured);
  t.is(
    decodePeerHeader(await good.frame(1)).opcode,
    PeerOpcode.authAccept,
    'the original session is accepted',
  );
  good.write(encodePeerFrame(PeerOpcode.raftMessage, 0, 0, Buffer.from('genuine')));
  await waitFor(() => p.messages.length === 1, 'the genuine message');

  const replay = await RawClient.connect(p.port);
  t.teardown(() => replay.destroy());
  await replay.frame(0);
  replay.write(
    Buffer.concat([captured, encodePeerFrame(PeerOpcode.raftMessage, 0, 0, Buffer.from('injected'))]),
  );
  t.is(errorCodeOfFrame(await replay.frame(1)), ErrorCode.UNAUTHENTICATED);
  await replay.waitClosed();
  t.deepEqual(p.messages, [{ from: 5, text: 'genuine' }]);
});
