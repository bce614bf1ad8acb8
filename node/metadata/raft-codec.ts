/**
 * The binary encoding of Raft peer messages, log entries and snapshots. One entry format and one
 * snapshot format serve both the wire (raft-node → peer) and the disk (raft-disk-storage), so an
 * entry is never re-encoded between receiving and persisting it.
 *
 * Decoding is the boundary against junk from the network: every length is checked against the bytes
 * that remain and against a named limit before anything is allocated, node ids must be positive safe
 * integers, terms and indexes non-negative safe integers, and decoding never throws (it returns
 * `{ ok: false, error }` with a BAD_REQUEST WalrusError). The core still validates meaning (step()).
 *
 * Message layout (all integers little-endian):
 *   version u8 (=1) | type u8 | from u64 | to u64 | term u64 | logTerm u64 | index u64 | commit u64
 *   | rejectHint u64 | flags u8 (1 reject, 2 transfer, 4 snapshot follows)
 *   | entryCount u32 | entry* | snapshot?
 * Entry: term u64 | index u64 | kind u8 | dataLength u32 | data
 * Snapshot: index u64 | term u64 | voterCount u32 | voter u64* | learnerCount u32 | learner u64*
 *   | dataLength u32 | data
 */
import { ByteReader, ByteWriter } from '../protocol/byte-io.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ConfState, Entry, Message, Snapshot } from '../raft/index.js';
import { EntryKind, MessageType } from '../raft/index.js';

/** Format version byte leading every message; a peer speaking another version is refused. */
export const raftWireVersion = 1;
/** Entries in one message; an App carries at most appendBytesMax (1 MiB) / 24 bytes ≈ 43,690. */
export const raftMessageEntryCountMax = 65_536;
/** Entry payload bytes in one message (sum over its entries). */
export const raftMessageEntriesSizeMaxBytes = 64 * 1024 * 1024;
/** One entry's payload (a metadata command or a conf change; both are small in practice). */
export const raftEntrySizeMaxBytes = 16 * 1024 * 1024;
/** A snapshot's state-machine data (the metadata state of the whole cluster). */
export const raftSnapshotSizeMaxBytes = 256 * 1024 * 1024;
/** Voters + learners in one configuration. */
export const raftConfMemberCountMax = 1024;

/** Fixed bytes of an encoded entry besides its data. */
export const entryHeaderBytes = 8 + 8 + 1 + 4;
const messageHeaderBytes = 1 + 1 + 7 * 8 + 1 + 4;

const typeCodes: readonly MessageType[] = [
  MessageType.App,
  MessageType.AppResp,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.Snap,
  MessageType.TimeoutNow,
];
const typeCodeOf = new Map<MessageType, number>(typeCodes.map((t, i) => [t, i]));

const flagReject = 1;
const flagTransfer = 2;
const flagSnapshot = 4;

// ---- entries ----

export function encodeEntry(w: ByteWriter, e: Entry): void {
  w.u64(e.term);
  w.u64(e.index);
  w.u8(e.kind);
  w.bytes32(e.data);
}

/** Reads one entry; throws WalrusError (the reader's code) on junk. `data` is a copy. */
export function decodeEntry(r: ByteReader): Entry {
  const term = r.u64('entry term');
  const index = r.u64('entry index');
  const kind = r.u8('entry kind');
  if (kind !== EntryKind.Normal && kind !== EntryKind.Conf) r.fail(`entry ${index} has unknown kind ${kind}`);
  const data = new Uint8Array(r.bytes32('entry data', raftEntrySizeMaxBytes));
  return { term, index, kind, data };
}

// ---- snapshots ----

export function encodeSnapshot(w: ByteWriter, s: Snapshot): void {
  w.u64(s.meta.index);
  w.u64(s.meta.term);
  encodeIds(w, s.meta.conf.voters);
  encodeIds(w, s.meta.conf.learners);
  w.bytes32(s.data);
}

/** Reads one snapshot; throws WalrusError (the reader's code) on junk. `data` is a copy. */
export function decodeSnapshot(r: ByteReader): Snapshot {
  const index = r.u64('snapshot index');
  const term = r.u64('snapshot term');
  const voters = decodeIds(r, 'snapshot voters', raftConfMemberCountMax);
  const learners = decodeIds(r, 'snapshot learners', raftConfMemberCountMax - voters.length);
  const conf: ConfState = { voters, learners };
  const data = new Uint8Array(r.bytes32('snapshot data', raftSnapshotSizeMaxBytes));
  return { meta: { index, term, conf }, data };
}

function encodeIds(w: ByteWriter, ids: readonly number[]): void {
  w.u32(ids.length);
  for (const id of ids) w.u64(id);
}

function decodeIds(r: ByteReader, what: string, countMax: number): number[] {
  const count = r.u32(`${what} count`);
  if (count > countMax) r.fail(`${what}: ${count} members, above the limit of ${raftConfMemberCountMax}`);
  if (count * 8 > r.remaining()) r.fail(`truncated message: ${what} needs ${count * 8} bytes`);
  const ids: number[] = [];
  for (let i = 0; i < count; i++) ids.push(nodeId(r, what));
  return ids;
}

function nodeId(r: ByteReader, what: string): number {
  const id = r.u64(what);
  if (id === 0) r.fail(`${what}: node id 0 is not allowed`);
  return id;
}

// ---- messages ----

export function encodeRaftMessage(m: Message): Buffer {
  let dataBytes = 0;
  for (const e of m.entries) dataBytes += entryHeaderBytes + e.data.length;
  const snapBytes = m.snapshot ? 40 + m.snapshot.data.length : 0;
  const w = new ByteWriter(messageHeaderBytes + dataBytes + snapBytes);
  const code = typeCodeOf.get(m.type);
  if (code === undefined) throw new WalrusError(ErrorCode.BAD_REQUEST, `unknown Raft message type ${m.type}`);
  w.u8(raftWireVersion);
  w.u8(code);
  w.u64(m.from);
  w.u64(m.to);
  w.u64(m.term);
  w.u64(m.logTerm);
  w.u64(m.index);
  w.u64(m.commit);
  w.u64(m.rejectHint);
  w.u8((m.reject ? flagReject : 0) | (m.transfer ? flagTransfer : 0) | (m.snapshot ? flagSnapshot : 0));
  w.u32(m.entries.length);
  for (const e of m.entries) encodeEntry(w, e);
  if (m.snapshot) encodeSnapshot(w, m.snapshot);
  return w.finish();
}

export type DecodeRaftMessageResult = { ok: true; message: Message } | { ok: false; error: WalrusError };

/** Never throws: junk gives `{ ok: false }` with a BAD_REQUEST WalrusError saying what was wrong. */
export function decodeRaftMessage(bytes: Uint8Array): DecodeRaftMessageResult {
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  try {
    return { ok: true, message: readMessage(new ByteReader(buf)) };
  } catch (error) {
    if (error instanceof WalrusError) return { ok: false, error };
    return {
      ok: false,
      error: new WalrusError(ErrorCode.BAD_REQUEST, `undecodable Raft message: ${String(error)}`, {
        cause: error,
      }),
    };
  }
}

function readMessage(r: ByteReader): Message {
  const version = r.u8('version');
  if (version !== raftWireVersion)
    r.fail(`Raft wire version ${version} is not supported (${raftWireVersion} is)`);
  const code = r.u8('type');
  const type = typeCodes[code];
  if (type === undefined) r.fail(`unknown Raft message type code ${code}`);
  const from = nodeId(r, 'from');
  const to = nodeId(r, 'to');
  const term = r.u64('term');
  const logTerm = r.u64('logTerm');
  const index = r.u64('index');
  const commit = r.u64('commit');
  const rejectHint = r.u64('rejectHint');
  const flags = r.u8('flags');
  if ((flags & ~(flagReject | flagTransfer | flagSnapshot)) !== 0) r.fail(`unknown flags ${flags}`);
  const count = r.u32('entry count');
  if (count > raftMessageEntryCountMax) {
    r.fail(`${count} entries, above the limit of ${raftMessageEntryCountMax}`);
  }
  if (count * entryHeaderBytes > r.remaining()) r.fail(`truncated message: ${count} entries do not fit`);
  const entries: Entry[] = [];
  let dataBytes = 0;
  for (let i = 0; i < count; i++) {
    const e = decodeEntry(r);
    dataBytes += e.data.length;
    if (dataBytes > raftMessageEntriesSizeMaxBytes) {
      r.fail(`entries exceed the limit of ${raftMessageEntriesSizeMaxBytes} bytes`);
    }
    const previous = entries[entries.length - 1];
    if (previous && e.index !== previous.index + 1) {
      r.fail(`entry ${e.index} does not follow entry ${previous.index}`);
    }
    entries.push(e);
  }
  const snapshot = (flags & flagSnapshot) !== 0 ? decodeSnapshot(r) : null;
  r.end('Raft message');
  return {
    type,
    from,
    to,
    term,
    logTerm,
    index,
    entries,
    commit,
    reject: (flags & flagReject) !== 0,
    rejectHint,
    snapshot,
    transfer: (flags & flagTransfer) !== 0,
  };
}
