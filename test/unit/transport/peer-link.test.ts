/**
 * PeerLink and PeerServer traffic over real loopback sockets: the bounded drop-oldest queue,
 * reconnecting after the server restarts, request timeouts and typed error replies, the server's
 * limits (requests in flight, frame size, connections) and peerRequestOnce.
 */
import test, { type ExecutionContext } from 'ava';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import {
  PeerLink,
  type PeerLinkOptions,
  parsePeerAddr,
  peerRequestOnce,
} from '../../../node/transport/peer-link.js';
import { PeerServer, type PeerServerOptions } from '../../../node/transport/peer-server.js';
import { TransportError } from '../../../node/transport/transport-error.js';
import { waitFor } from './helpers.js';

const secret = 's3cret';

interface Peer {
  readonly server: PeerServer;
  readonly port: number;
  readonly addr: string;
  readonly messages: string[];
}

async function startPeer(
  t: ExecutionContext,
  overrides: Partial<PeerServerOptions> = {},
  messages: string[] = [],
): Promise<Peer> {
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterSecret: secret,
    connectionCountMax: 16,
    frameSizeMaxBytes: 1024 * 1024,
    idleTimeoutMs: 60_000,
    onMessage: (_from, payload) => messages.push(payload.toString()),
    onRequest: async (_from, payload) => Buffer.from(`re:${payload.toString()}`),
    ...overrides,
  });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  return { server, port, addr: `127.0.0.1:${port}`, messages };
}

function link(t: ExecutionContext, o: Partial<PeerLinkOptions> & { addr: string }): PeerLink {
  const l = new PeerLink({
    selfNodeId: 1,
    clusterSecret: secret,
    queueCountMax: 1000,
    queueBytesMax: 1024 * 1024,
    connectTimeoutMs: 5_000,
    requestTimeoutMs: 10_000,
    reconnectBackoffMsMin: 10,
    reconnectBackoffMsMax: 100,
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

test('many messages sent in one turn all arrive, in order, as one stream', async (t) => {
  const p = await startPeer(t);
  const l = link(t, { addr: p.addr });
  await l.request(Buffer.from('warm up'));
  for (let i = 0; i < 5_000; i += 1) l.send(Buffer.from(`m${i}`));
  await waitFor(() => p.messages.length === 5_000, 'every message');
  t.deepEqual(
    p.messages,
    Array.from({ length: 5_000 }, (_, i) => `m${i}`),
  );
  t.is(l.droppedCount, 0);
});

test('queue overflow while the peer is down drops the oldest and counts them; the newest arrive later', async (t) => {
  const first = await startPeer(t);
  const port = first.port;
  await first.server.close();
  const l = link(t, { addr: `127.0.0.1:${port}`, queueCountMax: 4, queueBytesMax: 1024 });
  for (let i = 0; i < 10; i += 1) l.send(Buffer.from(`m${i}`));
  t.is(l.droppedCount, 6);
  t.is(l.queuedCount, 4);
  // Bytes bound: each frame is 12 bytes of framing plus its payload; a 1000-byte one evicts the rest.
  l.send(Buffer.alloc(1_000, 'x'));
  t.is(l.droppedCount, 10);
  t.is(l.queuedCount, 1);
  l.send(Buffer.alloc(2_000)); // larger than the whole queue: dropped itself, nothing evicted
  t.is(l.droppedCount, 11);
  t.is(l.queuedCount, 1);
  const messages: string[] = [];
  await startPeer(t, { port }, messages);
  await waitFor(() => messages.length === 1, 'the queued message after the restart');
  l.send(Buffer.from('last'));
  await waitFor(() => messages.length === 2, 'a message on the new connection');
  t.deepEqual(messages, ['x'.repeat(1_000), 'last']);
  t.true(l.connected);
});

test('the link reconnects after the server restarts; in-flight requests fail UNAVAILABLE, later ones work', async (t) => {
  let hold: (() => void) | undefined;
  const first = await startPeer(t, {
    onRequest: (_from, payload) =>
      payload.toString() === 'hang'
        ? new Promise((resolve) => {
            hold = () => resolve(Buffer.from('late'));
          })
        : Promise.resolve(Buffer.from('ok')),
  });
  const l = link(t, { addr: first.addr });
  t.is((await l.request(Buffer.from('a'))).toString(), 'ok');
  const hanging = l.request(Buffer.from('hang'));
  await waitFor(() => hold !== undefined, 'the request to reach the server');
  await first.server.close();
  const err = await rejection(hanging);
  t.is(err.code, ErrorCode.UNAVAILABLE);
  t.true(err instanceof TransportError && err.sent, 'the outcome of an in-flight request is unknown');
  await waitFor(() => !l.connected, 'the link to notice');
  const messages: string[] = [];
  await startPeer(t, { port: first.port }, messages);
  await waitFor(() => l.connected, 'the link to reconnect');
  t.is((await l.request(Buffer.from('b'))).toString(), 're:b');
  l.send(Buffer.from('after restart'));
  await waitFor(() => messages.length === 1, 'a message after the restart');
  t.deepEqual(messages, ['after restart']);
});

test('a request with no reply times out TIMEOUT; its late reply is ignored and the link keeps working', async (t) => {
  let release: (() => void) | undefined;
  const p = await startPeer(t, {
    onRequest: (_from, payload) =>
      payload.toString() === 'slow'
        ? new Promise((resolve) => {
            release = () => resolve(Buffer.from('too late'));
          })
        : Promise.resolve(Buffer.from(`re:${payload.toString()}`)),
  });
  const l = link(t, { addr: p.addr });
  t.is((await l.request(Buffer.from('warm up'))).toString(), 're:warm up'); // open: the next request is written at once
  const err = await rejection(l.request(Buffer.from('slow'), { timeoutMs: 100 }));
  t.is(err.code, ErrorCode.TIMEOUT);
  t.true(err instanceof TransportError && err.sent);
  release?.();
  t.is((await l.request(Buffer.from('next'))).toString(), 're:next');
  t.true(l.connected);
});

test('error replies carry the code and leader hint; a plain throw becomes INTERNAL; the connection survives', async (t) => {
  const p = await startPeer(t, {
    onRequest: async (_from, payload) => {
      const what = payload.toString();
      if (what === 'propose')
        throw new WalrusError(ErrorCode.NOT_LEADER, 'node 3 leads', {
          leaderHint: { nodeId: 3, clientAddr: '10.0.0.3:9000' },
        });
      if (what === 'busy') throw new WalrusError(ErrorCode.BUSY, 'proposal queue full');
      if (what === 'bug') throw new Error('oops');
      return Buffer.from('fine');
    },
  });
  const l = link(t, { addr: p.addr });
  const notLeader = await rejection(l.request(Buffer.from('propose')));
  t.is(notLeader.code, ErrorCode.NOT_LEADER);
  t.deepEqual(notLeader.leaderHint, { nodeId: 3, clientAddr: '10.0.0.3:9000' });
  t.is((await rejection(l.request(Buffer.from('busy')))).code, ErrorCode.BUSY);
  t.is((await rejection(l.request(Buffer.from('bug')))).code, ErrorCode.INTERNAL);
  t.is((await l.request(Buffer.from('ok'))).toString(), 'fine');
});

test('a synchronous throw in onRequest or onMessage does not crash the server', async (t) => {
  const p = await startPeer(t, {
    onMessage: () => {
      throw new Error('driver bug');
    },
    onRequest: () => {
      throw new WalrusError(ErrorCode.CONFLICT, 'sync');
    },
  });
  const l = link(t, { addr: p.addr });
  l.send(Buffer.from('boom'));
  t.is((await rejection(l.request(Buffer.from('x')))).code, ErrorCode.CONFLICT);
  t.true(l.connected);
});

test('server limits: requests in flight answered BUSY, an oversized frame FRAME_TOO_LARGE, extra connections BUSY', async (t) => {
  const p = await startPeer(t, {
    requestInFlightMaxPerConnection: 2,
    frameSizeMaxBytes: 1024,
    connectionCountMax: 1,
    onRequest: (_from, payload) =>
      payload.toString() === 'hang' ? new Promise(() => {}) : Promise.resolve(Buffer.from('ok')),
  });
  const l = link(t, { addr: p.addr, requestTimeoutMs: 60_000 });
  const hung = [l.request(Buffer.from('hang')), l.request(Buffer.from('hang'))];
  t.is((await rejection(l.request(Buffer.from('third')))).code, ErrorCode.BUSY);

  const other = link(t, {
    selfNodeId: 2,
    addr: p.addr,
    reconnectBackoffMsMin: 5_000,
    reconnectBackoffMsMax: 5_000,
  });
  t.is((await rejection(other.request(Buffer.from('x')))).code, ErrorCode.BUSY, 'connection limit');
  await other.close();

  const tooLarge = await rejection(l.request(Buffer.alloc(2_000)));
  t.is(tooLarge.code, ErrorCode.FRAME_TOO_LARGE);
  for (const h of hung)
    t.is((await rejection(h)).code, ErrorCode.FRAME_TOO_LARGE, 'the connection ended for all');
  await waitFor(() => l.connected, 'the link to reconnect');
  t.is((await l.request(Buffer.from('small'))).toString(), 'ok');
});

test('close(): pending requests fail UNAVAILABLE, later sends are dropped and counted, never thrown', async (t) => {
  const p = await startPeer(t, { onRequest: () => new Promise(() => {}) });
  const l = link(t, { addr: p.addr });
  const pending = l.request(Buffer.from('x'));
  await waitFor(() => l.connected, 'the link to open');
  await l.close();
  t.is((await rejection(pending)).code, ErrorCode.UNAVAILABLE);
  t.notThrows(() => l.send(Buffer.from('after close')));
  t.is(l.droppedCount, 1);
  t.is((await rejection(l.request(Buffer.from('y')))).code, ErrorCode.UNAVAILABLE);
});

test('peerRequestOnce: one authenticated request; UNAVAILABLE when nobody listens; UNAUTHENTICATED on a wrong secret', async (t) => {
  const p = await startPeer(t);
  const base = { addr: p.addr, selfNodeId: 9, clusterSecret: secret, timeoutMs: 5_000 };
  t.is((await peerRequestOnce({ ...base, payload: Buffer.from('join 9') })).toString(), 're:join 9');
  const wrong = await rejection(
    peerRequestOnce({ ...base, clusterSecret: 'nope', payload: Buffer.from('j') }),
  );
  t.is(wrong.code, ErrorCode.UNAUTHENTICATED);
  const gone = await startPeer(t);
  await gone.server.close();
  const down = await rejection(peerRequestOnce({ ...base, addr: gone.addr, payload: Buffer.from('j') }));
  t.is(down.code, ErrorCode.UNAVAILABLE);
  await waitFor(() => p.server.connectionCount() === 0, 'one-shot connections to be closed');
});

test('peer addresses: host:port and [v6]:port parse; anything else is BAD_REQUEST', (t) => {
  t.deepEqual(parsePeerAddr('10.0.0.1:7000'), { host: '10.0.0.1', port: 7000 });
  t.deepEqual(parsePeerAddr('[::1]:7000'), { host: '::1', port: 7000 });
  t.deepEqual(parsePeerAddr('node-2.local:1'), { host: 'node-2.local', port: 1 });
  for (const bad of ['', 'host', 'host:0', 'host:65536', '::1:7000', 'a:b']) {
    t.throws(() => parsePeerAddr(bad), { instanceOf: WalrusError }, bad);
  }
});

test('the server closes an idle peer connection; the link reconnects and keeps working', async (t) => {
  const infos: string[] = [];
  const p = await startPeer(t, {
    idleTimeoutMs: 100,
    logger: { info: (_o, m) => infos.push(m), warn() {}, error() {} },
  });
  const l = link(t, { addr: p.addr });
  t.is((await l.request(Buffer.from('a'))).toString(), 're:a');
  t.is(l.openCount, 1);
  await waitFor(() => infos.includes('closing idle peer connection'), 'the idle close');
  await waitFor(() => l.openCount === 2 && l.connected, 'the link to reconnect');
  t.is((await l.request(Buffer.from('b'))).toString(), 're:b');
});

test('request and send copy the caller bytes at once: reusing the buffer while connecting changes nothing', async (t) => {
  const messages: string[] = [];
  const p = await startPeer(t, {}, messages);
  const l = link(t, { addr: p.addr });
  const buf = Buffer.from('original');
  t.false(l.connected, 'still connecting');
  l.send(buf);
  const reply = l.request(buf);
  buf.write('mutated!');
  t.is((await reply).toString(), 're:original');
  await waitFor(() => messages.length === 1, 'the message');
  t.deepEqual(messages, ['original']);
});
