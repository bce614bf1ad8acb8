/**
 * The segment-replication messages between nodes (opcodes 0x60-0x7F), sent as peer requests on
 * the authenticated raft port, never accepted on the client port. Layout (docs/protocol.md,
 * "Segment replication"): the 8-byte binary header (marker, version, opcode, flags 0, request id
 * 0) and a body; the reply is the body alone (a refusal travels as the peer link's error reply).
 *
 *   replicaAppend  topic str8 | segmentId u32 | baseOffset u64 | epoch u32 | committedEnd u64 |
 *                  firstOffset u64 | records (timestamp, headers, value; consecutive offsets)
 *        reply     outcome u8 (ok, gap, fenced, sealed) | endOffset u64 | epoch u32
 *   fence          topic | segmentId | baseOffset | epoch            (epoch 0: only report)
 *        reply     epoch u32 | endOffset u64 | sealed bool | producers JSON
 *   replicaRead    topic | segmentId | offset u64 | endOffset u64 | recordCountMax u32 | byteCountMax u32
 *        reply     firstOffset u64 | records
 *   replicaCopy    topic | segmentId | baseOffset u64 | endOffset u64 | sources u8 count + u32 each
 *        reply     endOffset u64   (the asked node now holds a whole sealed copy, fetched from sources)
 */
import { ByteReader, ByteWriter } from './byte-io.js';
import {
  checkTopic,
  checkUint,
  readJson,
  readReplicaRecords,
  writeJson,
  writeReplicaRecords,
} from './binary-bodies.js';
import { binaryHeaderSizeBytes, opcodeRanges } from './binary-header.js';
import { ErrorCode, WalrusError } from './error-codes.js';
import { binaryMarker } from './frame.js';

export const ReplicationOpcode = {
  replicaAppend: 0x60,
  fence: 0x61,
  replicaRead: 0x62,
  replicaCopy: 0x63,
} as const;

/** Nodes a copy may be fetched from (a replica set's size bound). */
const copySourceCountMax = 7;

export interface ReplicaRecord {
  readonly timestampMs: number;
  readonly headers?: Readonly<Record<string, string>>;
  readonly value: Uint8Array;
}

export type ReplicationRequest =
  | {
      readonly op: 'replicaAppend';
      readonly topic: string;
      readonly segmentId: number;
      readonly baseOffset: number;
      readonly epoch: number;
      /** The leader's high watermark: what followers may treat as acknowledged. */
      readonly committedEnd: number;
      readonly firstOffset: number;
      readonly records: readonly ReplicaRecord[];
    }
  | {
      readonly op: 'fence';
      readonly topic: string;
      readonly segmentId: number;
      readonly baseOffset: number;
      /** Raise the replica's epoch to this (0: only report its state). */
      readonly epoch: number;
    }
  | {
      readonly op: 'replicaRead';
      readonly topic: string;
      readonly segmentId: number;
      readonly offset: number;
      /** Exclusive bound: nothing at or past it is returned. */
      readonly endOffset: number;
      readonly recordCountMax: number;
      readonly byteCountMax: number;
    }
  | {
      readonly op: 'replicaCopy';
      readonly topic: string;
      readonly segmentId: number;
      readonly baseOffset: number;
      /** The sealed end: the copy holds exactly [baseOffset, endOffset). */
      readonly endOffset: number;
      /** Replicas to fetch from, in the order to try them. */
      readonly sources: readonly number[];
    };

export const ReplicaAppendOutcome = { ok: 0, gap: 1, fenced: 2, sealed: 3 } as const;
export type ReplicaAppendOutcome = (typeof ReplicaAppendOutcome)[keyof typeof ReplicaAppendOutcome];

export interface ReplicationReplyByOp {
  replicaAppend: {
    readonly outcome: ReplicaAppendOutcome;
    /** ok: the durable end; gap: the offset expected next; else the replica's end. */
    readonly endOffset: number;
    /** The replica's epoch for the segment (the one that fenced the sender, on `fenced`). */
    readonly epoch: number;
  };
  fence: {
    readonly epoch: number;
    readonly endOffset: number;
    readonly sealed: boolean;
    /** Idempotent producers' last batches in the replica's copy (metadata's ProducerEntry shape). */
    readonly producers: readonly (
      | readonly [string, number, number, number, number]
      | readonly [string, number, number, number, number, number]
    )[];
  };
  replicaRead: {
    readonly firstOffset: number;
    readonly records: readonly (ReplicaRecord & { headers: Record<string, string> })[];
  };
  replicaCopy: { readonly endOffset: number };
}

const opOf = new Map<number, ReplicationRequest['op']>(
  Object.entries(ReplicationOpcode).map(([op, code]) => [code, op as ReplicationRequest['op']]),
);

/** True for a peer request payload that carries a replication message. */
export function isReplicationPayload(payload: Uint8Array): boolean {
  return (
    payload.length >= binaryHeaderSizeBytes &&
    payload[0] === binaryMarker &&
    payload[2]! >= opcodeRanges.segmentReplication[0] &&
    payload[2]! <= opcodeRanges.segmentReplication[1]
  );
}

export function encodeReplicationRequest(request: ReplicationRequest): Buffer {
  const w = new ByteWriter(request.op === 'replicaAppend' ? 4096 : 128);
  w.u8(binaryMarker);
  w.u8(1);
  w.u8(ReplicationOpcode[request.op]);
  w.u8(0);
  w.u32(0);
  w.str8(checkTopic(request.topic));
  w.u32(checkUint(request.segmentId, 'segmentId', 0xffffffff));
  switch (request.op) {
    case 'replicaAppend':
      w.u64(checkUint(request.baseOffset, 'baseOffset'));
      w.u32(checkUint(request.epoch, 'epoch', 0xffffffff));
      w.u64(checkUint(request.committedEnd, 'committedEnd'));
      w.u64(checkUint(request.firstOffset, 'firstOffset'));
      writeReplicaRecords(w, request.records);
      break;
    case 'fence':
      w.u64(checkUint(request.baseOffset, 'baseOffset'));
      w.u32(checkUint(request.epoch, 'epoch', 0xffffffff));
      break;
    case 'replicaRead':
      w.u64(checkUint(request.offset, 'offset'));
      w.u64(checkUint(request.endOffset, 'endOffset'));
      w.u32(checkUint(request.recordCountMax, 'recordCountMax', 0xffffffff));
      w.u32(checkUint(request.byteCountMax, 'byteCountMax', 0xffffffff));
      break;
    case 'replicaCopy':
      w.u64(checkUint(request.baseOffset, 'baseOffset'));
      w.u64(checkUint(request.endOffset, 'endOffset'));
      if (request.sources.length > copySourceCountMax)
        throw new WalrusError(ErrorCode.BAD_REQUEST, `more than ${copySourceCountMax} copy sources`);
      w.u8(request.sources.length);
      for (const id of request.sources) w.u32(checkUint(id, 'source node id', 0xffffffff));
      break;
  }
  return w.finish();
}

/** Decodes a replication request; BAD_REQUEST / UNKNOWN_COMMAND on anything malformed. */
export function decodeReplicationRequest(payload: Buffer): ReplicationRequest {
  const r = new ByteReader(payload);
  if (r.u8('marker') !== binaryMarker) r.fail('not a binary frame');
  if (r.u8('version') !== 1) r.fail('unsupported protocol version');
  const code = r.u8('opcode');
  const op = opOf.get(code);
  if (op === undefined) {
    throw new WalrusError(ErrorCode.UNKNOWN_COMMAND, `unknown replication opcode 0x${code.toString(16)}`);
  }
  r.u8('flags');
  r.u32('request id');
  const topic = checkTopic(r.str8('topic', 255, 1));
  const segmentId = r.u32('segmentId');
  let request: ReplicationRequest;
  switch (op) {
    case 'replicaAppend': {
      const baseOffset = r.u64('baseOffset');
      const epoch = r.u32('epoch');
      const committedEnd = r.u64('committedEnd');
      const firstOffset = r.u64('firstOffset');
      const records = readReplicaRecords(r);
      if (records.length === 0) r.fail('a replicated append carries at least one record');
      request = { op, topic, segmentId, baseOffset, epoch, committedEnd, firstOffset, records };
      break;
    }
    case 'fence':
      request = { op, topic, segmentId, baseOffset: r.u64('baseOffset'), epoch: r.u32('epoch') };
      break;
    case 'replicaRead':
      request = {
        op,
        topic,
        segmentId,
        offset: r.u64('offset'),
        endOffset: r.u64('endOffset'),
        recordCountMax: r.u32('recordCountMax'),
        byteCountMax: r.u32('byteCountMax'),
      };
      break;
    case 'replicaCopy': {
      const baseOffset = r.u64('baseOffset');
      const endOffset = r.u64('endOffset');
      if (endOffset < baseOffset) r.fail('a copy ends before its base');
      const count = r.u8('source count');
      if (count > copySourceCountMax) r.fail(`more than ${copySourceCountMax} copy sources`);
      const sources: number[] = [];
      for (let i = 0; i < count; i++) sources.push(r.u32('source node id'));
      request = { op, topic, segmentId, baseOffset, endOffset, sources };
      break;
    }
  }
  r.end('replication request');
  return request;
}

export function encodeReplicationReply<Op extends ReplicationRequest['op']>(
  op: Op,
  reply: ReplicationReplyByOp[Op],
): Buffer {
  const w = new ByteWriter(op === 'replicaRead' ? 4096 : 64);
  switch (op) {
    case 'replicaAppend': {
      const a = reply as ReplicationReplyByOp['replicaAppend'];
      w.u8(a.outcome);
      w.u64(checkUint(a.endOffset, 'endOffset'));
      w.u32(checkUint(a.epoch, 'epoch', 0xffffffff));
      break;
    }
    case 'fence': {
      const f = reply as ReplicationReplyByOp['fence'];
      w.u32(checkUint(f.epoch, 'epoch', 0xffffffff));
      w.u64(checkUint(f.endOffset, 'endOffset'));
      w.bool(f.sealed);
      writeJson(w, f.producers);
      break;
    }
    case 'replicaRead': {
      const rr = reply as ReplicationReplyByOp['replicaRead'];
      w.u64(checkUint(rr.firstOffset, 'firstOffset'));
      writeReplicaRecords(w, rr.records);
      break;
    }
    case 'replicaCopy':
      w.u64(checkUint((reply as ReplicationReplyByOp['replicaCopy']).endOffset, 'endOffset'));
      break;
  }
  return w.finish();
}

export function decodeReplicationReply<Op extends ReplicationRequest['op']>(
  op: Op,
  payload: Buffer,
): ReplicationReplyByOp[Op] {
  const r = new ByteReader(payload, 0, ErrorCode.UNAVAILABLE);
  let reply: ReplicationReplyByOp[ReplicationRequest['op']];
  switch (op) {
    case 'replicaAppend': {
      const outcome = r.u8('outcome');
      if (outcome > ReplicaAppendOutcome.sealed) r.fail(`unknown replicated append outcome ${outcome}`);
      reply = {
        outcome: outcome as ReplicaAppendOutcome,
        endOffset: r.u64('endOffset'),
        epoch: r.u32('epoch'),
      };
      break;
    }
    case 'fence': {
      const epoch = r.u32('epoch');
      const endOffset = r.u64('endOffset');
      const sealed = r.bool('sealed');
      const producers = readJson(r, 'producers');
      if (!Array.isArray(producers)) r.fail('producers is not a list');
      reply = {
        epoch,
        endOffset,
        sealed,
        producers: producers as ReplicationReplyByOp['fence']['producers'],
      };
      break;
    }
    case 'replicaCopy':
      reply = { endOffset: r.u64('endOffset') };
      break;
    default: {
      const firstOffset = r.u64('firstOffset');
      reply = { firstOffset, records: readReplicaRecords(r) };
      break;
    }
  }
  r.end('replication reply');
  return reply as ReplicationReplyByOp[Op];
}
