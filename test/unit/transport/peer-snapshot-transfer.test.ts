/**
 * Snapshot chunks over real loopback sockets: a PeerLink sends `snapshotChunk` requests to a
 * PeerServer whose handler feeds a SnapshotTransfer (node/metadata/snapshot-transfer.ts), with the
 * node's real frame limit. A 20 MiB snapshot, five times the frame limit, arrives intact (the one
 * message the old code sent is dropped by the link); a stalled receiver fails the transfer and a
 * retry of the same snapshot succeeds; a peer without the opcode refuses it with UNKNOWN_COMMAND.
 */
import { silentLogger } from '../../../node/log.js';
import test, { type ExecutionContext } from 'ava';
import {
  SnapshotTransfer,
  type SnapshotTransferLimits,
  decodeSnapshotChunk,
  snapshotChunkHeaderBytes,
  snapshotTransferLimits,
} from '../../../node/metadata/snapshot-transfer.js';
import { PeerOpcode } from '../../../node/protocol/binary-header.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { protocolLimits } from '../../../node/protocol/limits.js';
import { PeerLink } from '../../../node/transport/peer-link.js';
import { PeerServer, type PeerServerOptions } from '../../../node/transport/peer-server.js';
import { waitFor } from './helpers.js';

const secret = 's3cret';
const mib = 1024 * 1024;

function randomish(length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  let x = 0x9e3779b9;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  return b;
}

interface Side {
  readonly transfer: SnapshotTransfer;
  readonly reports: [number, boolean][];
  readonly delivered: [number, Buffer][];
  readonly warnings: string[];
}

function side(
  channel: (to: number, body: Uint8Array, timeoutMs: number) => Promise<Uint8Array>,
  limits: Partial<SnapshotTransferLimits> = {},
): Side {
  const reports: [number, boolean][] = [];
  const delivered: [number, Buffer][] = [];
  const warnings: string[] = [];
  const transfer = new SnapshotTransfer({
    channel,
    deliver: (from, payload) => delivered.push([from, payload]),
    report: (to, ok) => reports.push([to, ok]),
    logger: { ...silentLogger, warn: (o, m) => warnings.push(`${m} ${JSON.stringify(o)}`) },
    now: () => performance.now(),
    limits,
  });
  return { transfer, reports, delivered, warnings };
}

async function peerServer(
  t: ExecutionContext,
  overrides: Partial<PeerServerOptions>,
): Promise<{ server: PeerServer; addr: string }> {
  const server = new PeerServer({
    host: '127.0.0.1',
    port: 0,
    clusterSecret: secret,
    connectionCountMax: 16,
    frameSizeMaxBytes: protocolLimits.frameSizeMaxBytes,
    idleTimeoutMs: 60_000,
    onMessage: () => {},
    onRequest: async () => Buffer.from('ok'),
    ...overrides,
  });
  const { port } = await server.listen();
  t.teardown(() => server.close());
  return { server, addr: `127.0.0.1:${port}` };
}

function peerLink(t: ExecutionContext, addr: string): PeerLink {
  const link = new PeerLink({
    selfNodeId: 1,
    addr,
    clusterSecret: secret,
    queueCountMax: 4096,
    queueBytesMax: 64 * mib,
    connectTimeoutMs: 5_000,
    requestTimeoutMs: 10_000,
    reconnectBackoffMsMin: 10,
    reconnectBackoffMsMax: 100,
  });
  t.teardown(() => link.close());
  return link;
}

function chunkChannel(link: PeerLink) {
  return (_to: number, body: Uint8Array, timeoutMs: number): Promise<Uint8Array> =>
    link.request(body, { timeoutMs, opcode: PeerOpcode.snapshotChunk });
}

test('a 20 MiB snapshot crosses a link whose frames stop at 4 MiB + 64 KiB, intact, with bounded chunks in flight', async (t) => {
  let receiver: Side | undefined;
  let inHandler = 0;
  let inHandlerMax = 0;
  let largestBody = 0;
  const { addr } = await peerServer(t, {
    onSnapshotChunk: async (from, payload) => {
      inHandler += 1;
      inHandlerMax = Math.max(inHandlerMax, inHandler);
      largestBody = Math.max(largestBody, payload.length);
      await new Promise((r) => setImmediate(r));
      inHandler -= 1;
      return receiver!.transfer.receive(from, payload);
    },
  });
  const link = peerLink(t, addr);
  receiver = side(() => Promise.reject(new Error('unused')));
  const sender = side(chunkChannel(link));
  const payload = randomish(20 * mib);
  t.true(payload.length > 4 * protocolLimits.frameSizeMaxBytes);

  // What the old code did: one message of the whole snapshot. The link drops it.
  link.send(payload);
  t.is(link.droppedCount, 1);

  const started = performance.now();
  t.is(
    sender.transfer.send(2, 7, 123_456, () => payload),
    'started',
  );
  await waitFor(() => sender.reports.length === 1, 'the transfer to finish', 60_000);
  const ms = performance.now() - started;
  t.log(`20 MiB in ${Math.round(ms)} ms over loopback`);
  t.deepEqual(sender.reports, [[2, true]]);
  t.is(receiver.delivered.length, 1);
  const [from, got] = receiver.delivered[0]!;
  t.is(from, 1, 'keyed by the authenticated sender');
  t.true(got.equals(payload), 'the snapshot arrives byte for byte');
  t.is(largestBody, snapshotTransferLimits.chunkSizeBytes + snapshotChunkHeaderBytes);
  t.true(
    inHandlerMax <= snapshotTransferLimits.chunksInFlightMax,
    `${inHandlerMax} chunks in the handler at once`,
  );
  t.like(sender.transfer.stats(), { sendsSucceeded: 1, bytesSent: payload.length, sendsFailed: 0 });
  t.like(receiver.transfer.stats(), { receivesCompleted: 1, chunksRefused: 0 });
  t.deepEqual(sender.warnings, []);
});

test('a receiver that stops answering fails the transfer (reported to Raft); the retry of the same snapshot succeeds', async (t) => {
  let receiver: Side | undefined;
  let stalled = true;
  const { addr } = await peerServer(t, {
    onSnapshotChunk: async (from, payload) => {
      const { seq } = decodeSnapshotChunk(payload);
      if (stalled && seq >= 3) return new Promise<Uint8Array>(() => {}); // hung: never answered
      return receiver!.transfer.receive(from, payload);
    },
  });
  const link = peerLink(t, addr);
  receiver = side(() => Promise.reject(new Error('unused')));
  const limits = { chunkSizeBytes: 64 * 1024, chunkAckTimeoutMs: 300, retryBackoffMs: 1 };
  const sender = side(chunkChannel(link), limits);
  const payload = randomish(1 * mib);
  sender.transfer.send(2, 3, 50, () => payload);
  await waitFor(() => sender.reports.length === 1, 'the stalled transfer to fail');
  t.deepEqual(sender.reports, [[2, false]]);
  t.true(sender.warnings.some((w) => w.includes('snapshot transfer failed') && w.includes('TIMEOUT')));
  t.is(receiver.delivered.length, 0);
  // Raft sends the snapshot again: it starts from chunk 0 (over the partial one) and completes.
  stalled = false;
  await new Promise((r) => setTimeout(r, 5));
  t.is(
    sender.transfer.send(2, 3, 50, () => payload),
    'started',
  );
  await waitFor(() => sender.reports.length === 2, 'the retry to finish');
  t.deepEqual(sender.reports[1], [2, true]);
  t.is(receiver.delivered.length, 1);
  t.true(receiver.delivered[0]![1].equals(payload));
});

test('a peer without snapshotChunk answers UNKNOWN_COMMAND: the transfer fails loudly, the link stays up', async (t) => {
  const { addr } = await peerServer(t, {});
  const link = peerLink(t, addr);
  const sender = side(chunkChannel(link));
  sender.transfer.send(2, 1, 10, () => randomish(3 * mib));
  await waitFor(() => sender.reports.length === 1, 'the refusal');
  t.deepEqual(sender.reports, [[2, false]]);
  t.true(sender.warnings.some((w) => w.includes(ErrorCode.UNKNOWN_COMMAND)));
  t.is((await link.request(Buffer.from('still there'))).toString(), 'ok');
  t.is(link.openCount, 1);
});
