/**
 * Peer frames and the per-turn write batcher: frames round-trip through the shared frame decoder,
 * error frames carry their code, and everything pushed in one turn is written as ONE buffer.
 */
import test from 'ava';
import fc from 'fast-check';
import { readErrorBody } from '../../../node/protocol/binary-bodies.js';
import { BinaryFlag, PeerOpcode } from '../../../node/protocol/binary-header.js';
import { ByteReader } from '../../../node/protocol/byte-io.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { FrameDecoder } from '../../../node/protocol/frame-decoder.js';
import {
  decodePeerHeader,
  encodePeerErrorFrame,
  encodePeerFrame,
  FrameBatcher,
  peerBody,
} from '../../../node/transport/peer-wire.js';

test('peer frames round-trip through the frame decoder, whatever the body', (t) => {
  fc.assert(
    fc.property(
      fc.constantFrom(PeerOpcode.raftMessage, PeerOpcode.peerRequest),
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.uint8Array({ maxLength: 300 }),
      (opcode, requestId, body) => {
        const { frames, error } = new FrameDecoder(1024).push(encodePeerFrame(opcode, 0, requestId, body));
        const frame = frames[0]!;
        const h = decodePeerHeader(frame);
        return (
          error === undefined &&
          frames.length === 1 &&
          h.opcode === opcode &&
          h.requestId === requestId &&
          h.flags === 0 &&
          peerBody(frame).equals(body)
        );
      },
    ),
  );
  t.pass();
});

test('an error frame carries code, message and leader hint; bad headers fail with the asked code', (t) => {
  const frame = encodePeerErrorFrame(PeerOpcode.peerRequest, 77, {
    code: ErrorCode.NOT_LEADER,
    message: 'ask node 2',
    leaderHint: { nodeId: 2, clientAddr: 'h:1' },
  });
  const payload = frame.subarray(4);
  const h = decodePeerHeader(payload);
  t.is(h.flags, BinaryFlag.REPLY | BinaryFlag.ERROR);
  t.is(h.requestId, 77);
  t.deepEqual(readErrorBody(new ByteReader(peerBody(payload))), {
    code: ErrorCode.NOT_LEADER,
    message: 'ask node 2',
    leaderHint: { nodeId: 2, clientAddr: 'h:1' },
  });
  for (const bad of [
    Buffer.from('PING'),
    Buffer.from([0xb1, 2, 0x40, 0, 0, 0, 0, 0]),
    Buffer.from([0xb1, 1, 0x40, 0x80, 0, 0, 0, 0]),
  ]) {
    const err = t.throws(() => decodePeerHeader(bad, ErrorCode.UNAUTHENTICATED), { instanceOf: WalrusError });
    t.is(err?.code, ErrorCode.UNAUTHENTICATED);
  }
});

test('frames pushed in one turn are written as one concatenated buffer on the next tick', async (t) => {
  const writes: Buffer[] = [];
  const batcher = new FrameBatcher((b) => writes.push(b));
  const frames = Array.from({ length: 100 }, (_, i) =>
    encodePeerFrame(PeerOpcode.raftMessage, 0, 0, Buffer.from(`m${i}`)),
  );
  for (const f of frames) batcher.push(f);
  t.is(writes.length, 0, 'nothing is written synchronously');
  t.is(batcher.pendingBytes, Buffer.concat(frames).length);
  await new Promise((r) => setImmediate(r));
  t.is(writes.length, 1);
  t.true(writes[0]!.equals(Buffer.concat(frames)));
  batcher.push(frames[0]!);
  batcher.clear();
  await new Promise((r) => setImmediate(r));
  t.is(writes.length, 1, 'cleared frames are never written');
});
