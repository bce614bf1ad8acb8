/**
 * RaftDiskStorage on real files with real fsyncs: round trips through reopen, torn tails, damage,
 * write failures, and real RaftCores (one voter, then three wired through the wire codec) that
 * "crash" (objects dropped, storage reopened from the same directories) and must keep every
 * committed entry, applied identically.
 */
import { type Logger, silentLogger } from '../../../node/log.js';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import fc from 'fast-check';
import { decodeRaftMessage, encodeRaftMessage } from '../../../node/metadata/raft-codec.js';
import {
  RaftDiskStorage,
  RaftStorageError,
  raftLogFileSizeMaxBytes,
} from '../../../node/metadata/raft-disk-storage.js';
import type { ConfState, Entry, HardState, Snapshot } from '../../../node/raft/index.js';
import { EntryKind, Prng, RaftCore, makeRaftConfig } from '../../../node/raft/index.js';
import { FaultInjectingFileIo } from '../../../node/storage-io/index.js';

const one: ConfState = { voters: [1], learners: [] };

const created: string[] = [];

function tmp(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-raftdisk-'));
  created.push(dir);
  return dir;
}

test.after.always(() => {
  for (const dir of created) fs.rmSync(dir, { recursive: true, force: true });
});

function logPath(dir: string): string {
  return path.join(dir, 'raft_meta', 'entries.log');
}

function snapPath(dir: string): string {
  return path.join(dir, 'raft_meta', 'snapshot.bin');
}

function ent(index: number, term: number, text = `e${index}t${term}`): Entry {
  return { index, term, kind: EntryKind.Normal, data: new Uint8Array(Buffer.from(text)) };
}

function all(s: RaftDiskStorage): Entry[] {
  const lo = s.firstIndex();
  const hi = s.lastIndex() + 1;
  return hi > lo ? s.entries(lo, hi, Number.MAX_SAFE_INTEGER) : [];
}

function view(s: RaftDiskStorage): object {
  return {
    hard: s.hardState(),
    snap: s.snapshot(),
    first: s.firstIndex(),
    last: s.lastIndex(),
    entries: all(s),
  };
}

function captureLogger(): Logger & { warnings: { o: object; m: string }[] } {
  const warnings: { o: object; m: string }[] = [];
  return { ...silentLogger, warnings, warn: (o, m) => warnings.push({ o, m }) };
}

function expectCorrupt(t: import('ava').ExecutionContext, dir: string, file: string): void {
  const error = t.throws(() => RaftDiskStorage.open(dir, one), { instanceOf: RaftStorageError });
  t.is(error?.code, 'CORRUPT_RECORD');
  t.true(error?.message.includes(file), error?.message);
  t.regex(error?.message ?? '', /refusing to start as a voter/);
}

test('a brand-new directory is fresh with the bootstrap configuration, which then persists', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, { voters: [1, 2, 3], learners: [4] });
  t.true(s.fresh);
  t.deepEqual(s.hardState(), { term: 0, vote: 0, commit: 0 });
  t.deepEqual(s.snapshot().meta, { index: 0, term: 0, conf: { voters: [1, 2, 3], learners: [4] } });
  t.is(s.firstIndex(), 1);
  t.is(s.lastIndex(), 0);
  t.is(s.term(0), 0);
  t.is(s.term(1), undefined);
  t.true(fs.existsSync(logPath(dir)) && fs.existsSync(snapPath(dir)));
  s.close();
  const again = RaftDiskStorage.open(dir, { voters: [], learners: [] });
  t.false(again.fresh);
  t.deepEqual(again.snapshot().meta.conf, { voters: [1, 2, 3], learners: [4] });
  again.close();
});

test('given the raft_meta directory itself, the files go there (not raft_meta/raft_meta)', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(path.join(dir, 'raft_meta'), one);
  s.persist({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [ent(1, 1)], snapshot: null });
  s.close();
  t.false(fs.existsSync(path.join(dir, 'raft_meta', 'raft_meta')));
  const r = RaftDiskStorage.open(dir, one);
  t.is(r.lastIndex(), 1);
  r.close();
});

test('persist/reopen round trip: hard state, entries, conflicting suffix overwritten', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, one);
  s.persist({
    hardState: { term: 1, vote: 1, commit: 0 },
    entries: [ent(1, 1), ent(2, 1), ent(3, 1)],
    snapshot: null,
  });
  s.persist({ hardState: { term: 2, vote: 0, commit: 2 }, entries: [], snapshot: null });
  // Entries 3.. are replaced by a new leader's entries of term 2.
  s.persist({ hardState: null, entries: [ent(3, 2), ent(4, 2)], snapshot: null });
  s.persist({ hardState: { term: 2, vote: 0, commit: 4 }, entries: [ent(5, 2)], snapshot: null });
  const before = view(s);
  t.deepEqual(
    all(s).map((e) => [e.index, e.term]),
    [
      [1, 1],
      [2, 1],
      [3, 2],
      [4, 2],
      [5, 2],
    ],
  );
  t.deepEqual(s.hardState(), { term: 2, vote: 0, commit: 4 });
  s.close();
  const r = RaftDiskStorage.open(dir, one);
  t.false(r.fresh);
  t.deepEqual(view(r), before);
  t.is(r.logSizeBytes(), fs.statSync(logPath(dir)).size);
  r.close();
});

test('RaftStorage invariants: term(firstIndex-1) is the snapshot term; entries() returns at least one', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, one);
  const big = (i: number): Entry => ({
    index: i,
    term: 1,
    kind: EntryKind.Normal,
    data: new Uint8Array(1000),
  });
  s.persist({
    hardState: { term: 1, vote: 1, commit: 6 },
    entries: [1, 2, 3, 4, 5, 6].map(big),
    snapshot: null,
  });
  s.installCompaction({ meta: { index: 3, term: 1, conf: one }, data: new Uint8Array([7]) });
  for (const st of [s, reopen(s, dir)]) {
    t.is(st.firstIndex(), 4);
    t.is(st.term(st.firstIndex() - 1), st.snapshot().meta.term);
    t.is(st.term(2), undefined);
    t.is(st.entries(4, 7, 1).length, 1);
    t.is(st.entries(4, 7, 2048).length, 2);
    t.is(st.entries(4, 7, 1e9).length, 3);
    t.deepEqual(st.snapshot().data, new Uint8Array([7]));
  }
});

function reopen(s: RaftDiskStorage, dir: string): RaftDiskStorage {
  s.close();
  return RaftDiskStorage.open(dir, one);
}

test('a snapshot from the leader replaces the whole log, with entries after it, and survives reopen', (t) => {
  const dir = tmp();
  let s = RaftDiskStorage.open(dir, { voters: [], learners: [] });
  s.persist({
    hardState: { term: 1, vote: 0, commit: 1 },
    entries: [ent(1, 1), ent(2, 1), ent(3, 1)],
    snapshot: null,
  });
  const snap: Snapshot = {
    meta: { index: 10, term: 3, conf: { voters: [1, 2, 3], learners: [] } },
    data: new Uint8Array(Buffer.from('state@10')),
  };
  s.persist({ hardState: { term: 3, vote: 0, commit: 10 }, entries: [ent(11, 3)], snapshot: snap });
  const before = view(s);
  t.is(s.firstIndex(), 11);
  t.is(s.lastIndex(), 11);
  t.is(s.term(10), 3);
  s = reopen(s, dir);
  t.deepEqual(view(s), before);
  s.close();
});

test('compaction drops covered entries; a large dead prefix is rewritten away; reopen agrees', (t) => {
  const dir = tmp();
  let s = RaftDiskStorage.open(dir, one);
  const payload = new Uint8Array(8192);
  let index = 0;
  for (let batch = 0; batch < 100; batch++) {
    const es: Entry[] = [];
    for (let k = 0; k < 5; k++) {
      index += 1;
      es.push({ index, term: 1, kind: EntryKind.Normal, data: payload });
    }
    s.persist({ hardState: { term: 1, vote: 1, commit: index }, entries: es, snapshot: null });
  }
  const sizeBefore = s.logSizeBytes();
  t.true(sizeBefore > 2 * 1024 * 1024);
  // A small compaction: not worth a rewrite.
  s.installCompaction({ meta: { index: 10, term: 1, conf: one }, data: new Uint8Array([1]) });
  t.is(s.logSizeBytes(), sizeBefore);
  s = reopen(s, dir);
  t.is(s.firstIndex(), 11);
  t.is(s.lastIndex(), 500);
  // A large one: the log shrinks to about the live entries.
  s.installCompaction({ meta: { index: 490, term: 1, conf: one }, data: new Uint8Array([2]) });
  t.true(s.logSizeBytes() < 12 * 8192, `log is ${s.logSizeBytes()} bytes`);
  t.is(s.logSizeBytes(), fs.statSync(logPath(dir)).size);
  const before = view(s);
  s = reopen(s, dir);
  t.deepEqual(view(s), before);
  t.is(s.firstIndex(), 491);
  t.deepEqual(s.hardState(), { term: 1, vote: 1, commit: 500 });
  // Appending after a rewrite still works and survives.
  s.persist({ hardState: { term: 2, vote: 1, commit: 501 }, entries: [ent(501, 2)], snapshot: null });
  s = reopen(s, dir);
  t.is(s.lastIndex(), 501);
  t.is(s.term(501), 2);
  s.close();
});

test('a torn last record, cut at every byte, is truncated back to the previous record', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, one);
  s.persist({ hardState: { term: 1, vote: 1, commit: 1 }, entries: [ent(1, 1), ent(2, 1)], snapshot: null });
  const expected = view(s);
  const goodSize = s.logSizeBytes();
  s.persist({ hardState: { term: 2, vote: 1, commit: 3 }, entries: [ent(3, 2), ent(4, 2)], snapshot: null });
  const fullSize = s.logSizeBytes();
  s.close();
  const full = fs.readFileSync(logPath(dir));
  for (let cut = goodSize; cut < fullSize; cut++) {
    fs.writeFileSync(logPath(dir), full.subarray(0, cut));
    const logger = captureLogger();
    const r = RaftDiskStorage.open(dir, one, logger);
    t.deepEqual(view(r), expected, `cut at ${cut}`);
    t.is(r.logSizeBytes(), goodSize);
    t.is(fs.statSync(logPath(dir)).size, goodSize);
    if (cut > goodSize) {
      t.is(logger.warnings.length, 1);
      t.like(logger.warnings[0]?.o, { file: logPath(dir), fromByte: goodSize, toByte: cut });
    }
    // The truncated log accepts new writes that survive.
    r.persist({ hardState: { term: 3, vote: 1, commit: 3 }, entries: [ent(3, 3)], snapshot: null });
    r.close();
    const again = RaftDiskStorage.open(dir, one);
    t.is(again.term(3), 3);
    t.deepEqual(again.hardState(), { term: 3, vote: 1, commit: 3 });
    again.close();
  }
  // Zeros after the last record are a torn tail too.
  fs.writeFileSync(logPath(dir), Buffer.concat([full, Buffer.alloc(4096)]));
  const r2 = RaftDiskStorage.open(dir, one);
  t.is(r2.lastIndex(), 4);
  t.is(r2.logSizeBytes(), fullSize);
  r2.close();
});

/** A log of two batches; returns the bytes and where the last record starts. */
function twoBatchLog(dir: string): { full: Buffer; lastFrom: number; expected: object } {
  const s = RaftDiskStorage.open(dir, one);
  s.persist({ hardState: { term: 1, vote: 1, commit: 1 }, entries: [ent(1, 1), ent(2, 1)], snapshot: null });
  const expected = view(s);
  const lastFrom = s.logSizeBytes();
  s.persist({ hardState: { term: 2, vote: 1, commit: 3 }, entries: [ent(3, 2), ent(4, 2)], snapshot: null });
  s.close();
  return { full: fs.readFileSync(logPath(dir)), lastFrom, expected };
}

test('bit rot in a complete last record (body, checksum or length header) refuses to start: it is not a torn write', (t) => {
  const dir = tmp();
  const { full, lastFrom } = twoBatchLog(dir);
  // Every byte of the last record, one bit each; also with zeros after it (a tail that never landed).
  for (let at = lastFrom; at < full.length; at++) {
    const bad = Buffer.from(full);
    bad[at]! ^= 1 << (at % 8);
    for (const bytes of [bad, Buffer.concat([bad, Buffer.alloc(512)])]) {
      fs.writeFileSync(logPath(dir), bytes);
      expectCorrupt(t, dir, 'entries.log');
      t.is(fs.statSync(logPath(dir)).size, bytes.length, `byte ${at}: nothing truncated`);
    }
  }
  // Any bit, by property: still corruption, never a silent truncation.
  fc.assert(
    fc.property(
      fc.integer({ min: lastFrom, max: full.length - 1 }),
      fc.integer({ min: 0, max: 7 }),
      (at, bit) => {
        const bad = Buffer.from(full);
        bad[at]! ^= 1 << bit;
        fs.writeFileSync(logPath(dir), bad);
        const error = t.throws(() => RaftDiskStorage.open(dir, one), { instanceOf: RaftStorageError });
        return error?.code === 'CORRUPT_RECORD' && /remove-node/.test(error.message);
      },
    ),
    { numRuns: 200 },
  );
});

test('a torn last record (any cut) or a garbage tail whose header is invalid is truncated, by property', (t) => {
  const dir = tmp();
  const { full, lastFrom, expected } = twoBatchLog(dir);
  fc.assert(
    fc.property(
      fc.integer({ min: lastFrom, max: full.length - 1 }),
      fc.uint8Array({ minLength: 0, maxLength: 300 }),
      (cut, garbage) => {
        const bytes = Buffer.concat([full.subarray(0, cut), Buffer.from(garbage)]);
        // Torn means: cut short by the end of the file, or a length header that is incomplete or
        // invalid. An intact length header with its whole record present is judged by its checksum
        // (the test above), so such draws are not torn writes.
        if (bytes.length >= lastFrom + 8) {
          const length = bytes.readUInt32LE(lastFrom);
          const headerValid = ~length >>> 0 === bytes.readUInt32LE(lastFrom + 4);
          if (headerValid && bytes.length >= lastFrom + 12 + length) return true;
        }
        fs.writeFileSync(logPath(dir), bytes);
        const r = RaftDiskStorage.open(dir, one);
        try {
          t.deepEqual(view(r), expected);
          return r.logSizeBytes() === lastFrom && fs.statSync(logPath(dir)).size === lastFrom;
        } finally {
          r.close();
        }
      },
    ),
    { numRuns: 300 },
  );
  // Garbage after the complete last record: the record stays, the garbage goes.
  fs.writeFileSync(logPath(dir), Buffer.concat([full, Buffer.from('not a record header, just junk')]));
  const r = RaftDiskStorage.open(dir, one);
  t.is(r.lastIndex(), 4);
  t.is(r.logSizeBytes(), full.length);
  r.close();
});

test('a bit flip anywhere in a record followed by others refuses to start, naming the file', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, one);
  s.persist({ hardState: { term: 1, vote: 1, commit: 0 }, entries: [ent(1, 1)], snapshot: null });
  const from = s.logSizeBytes();
  s.persist({ hardState: { term: 1, vote: 1, commit: 1 }, entries: [ent(2, 1), ent(3, 1)], snapshot: null });
  const to = s.logSizeBytes();
  s.persist({ hardState: { term: 1, vote: 1, commit: 3 }, entries: [], snapshot: null });
  s.close();
  const good = fs.readFileSync(logPath(dir));
  for (let at = from; at < to; at++) {
    const bad = Buffer.from(good);
    bad[at]! ^= 1 << (at % 8);
    fs.writeFileSync(logPath(dir), bad);
    expectCorrupt(t, dir, 'entries.log');
  }
  // The HEAD record (hard state of a rewritten log) is never truncated away.
  const bad = Buffer.from(good);
  bad[20]! ^= 4;
  fs.writeFileSync(logPath(dir), bad);
  expectCorrupt(t, dir, 'entries.log');
  fs.writeFileSync(logPath(dir), good.subarray(0, 12));
  expectCorrupt(t, dir, 'entries.log');
  // Intact again: opens.
  fs.writeFileSync(logPath(dir), good);
  const r = RaftDiskStorage.open(dir, one);
  t.deepEqual(r.hardState(), { term: 1, vote: 1, commit: 3 });
  r.close();
});

test('a corrupt or truncated snapshot refuses to start; a missing one next to a log too', (t) => {
  const dir = tmp();
  const s = RaftDiskStorage.open(dir, one);
  s.persist({ hardState: { term: 1, vote: 1, commit: 2 }, entries: [ent(1, 1), ent(2, 1)], snapshot: null });
  s.installCompaction({ meta: { index: 2, term: 1, conf: one }, data: new Uint8Array(Buffer.from('sm')) });
  s.close();
  const good = fs.readFileSync(snapPath(dir));
  for (let at = 0; at < good.length; at++) {
    const bad = Buffer.from(good);
    bad[at]! ^= 0x80;
    fs.writeFileSync(snapPath(dir), bad);
    expectCorrupt(t, dir, 'snapshot.bin');
    fs.writeFileSync(snapPath(dir), good.subarray(0, at));
    expectCorrupt(t, dir, 'snapshot.bin');
  }
  fs.unlinkSync(snapPath(dir));
  expectCorrupt(t, dir, 'snapshot.bin');
  fs.writeFileSync(snapPath(dir), good);
  const r = RaftDiskStorage.open(dir, one);
  t.is(r.snapshot().meta.index, 2);
  r.close();
});

test('an absurdly large entries.log is refused with a clear error before it is read', (t) => {
  const dir = tmp();
  RaftDiskStorage.open(dir, one).close();
  fs.truncateSync(logPath(dir), raftLogFileSizeMaxBytes + 1); // sparse: no real disk use
  const error = t.throws(() => RaftDiskStorage.open(dir, one), { instanceOf: RaftStorageError });
  t.is(error?.code, 'CORRUPT_RECORD');
  t.regex(error?.message ?? '', /entries\.log: is \d+ bytes, above the limit/);
  fs.unlinkSync(logPath(dir));
});

test('ENOSPC and EIO while persisting throw typed errors and leave a consistent prefix', (t) => {
  const dir = tmp();
  const io = new FaultInjectingFileIo();
  const s = RaftDiskStorage.open(dir, one, undefined, io);
  s.persist({ hardState: { term: 1, vote: 1, commit: 1 }, entries: [ent(1, 1)], snapshot: null });
  const before = view(s);
  const size = s.logSizeBytes();
  io.inject({ op: 'write', code: 'ENOSPC', pathIncludes: 'entries.log', partialBytes: 7 });
  const full = t.throws(
    () => s.persist({ hardState: { term: 1, vote: 1, commit: 2 }, entries: [ent(2, 1)], snapshot: null }),
    { instanceOf: RaftStorageError },
  );
  t.is(full?.code, 'DISK_FULL');
  t.deepEqual(view(s), before);
  t.is(fs.statSync(logPath(dir)).size, size);
  io.inject({ op: 'fdatasync', code: 'EIO', pathIncludes: 'entries.log' });
  const eio = t.throws(
    () => s.persist({ hardState: { term: 1, vote: 1, commit: 2 }, entries: [ent(2, 1)], snapshot: null }),
    { instanceOf: RaftStorageError },
  );
  t.is(eio?.code, 'UNAVAILABLE');
  t.is(fs.statSync(logPath(dir)).size, size);
  // Space is back: the same write succeeds and survives.
  s.persist({ hardState: { term: 1, vote: 1, commit: 2 }, entries: [ent(2, 1)], snapshot: null });
  s.close();
  const r = RaftDiskStorage.open(dir, one);
  t.deepEqual(r.hardState(), { term: 1, vote: 1, commit: 2 });
  t.is(r.lastIndex(), 2);
  r.close();
});

test('a crash between installing a leader snapshot and rewriting the log recovers to the snapshot', (t) => {
  const dir = tmp();
  const io = new FaultInjectingFileIo();
  const s = RaftDiskStorage.open(dir, { voters: [], learners: [] }, undefined, io);
  s.persist({ hardState: { term: 1, vote: 0, commit: 1 }, entries: [ent(1, 1), ent(2, 1)], snapshot: null });
  const snap: Snapshot = {
    meta: { index: 7, term: 2, conf: { voters: [1, 2], learners: [3] } },
    data: new Uint8Array([5]),
  };
  io.inject({ op: 'rename', code: 'EIO', pathIncludes: 'entries.log' });
  const error = t.throws(
    () => s.persist({ hardState: { term: 2, vote: 0, commit: 7 }, entries: [], snapshot: snap }),
    { instanceOf: RaftStorageError },
  );
  t.is(error?.code, 'UNAVAILABLE');
  // Memory may now disagree with the disk: the storage refuses further writes until reopened.
  const refused = t.throws(
    () => s.persist({ hardState: { term: 3, vote: 0, commit: 7 }, entries: [], snapshot: null }),
    {
      instanceOf: RaftStorageError,
    },
  );
  t.regex(refused?.message ?? '', /restart the node/);
  s.close();
  const r = RaftDiskStorage.open(dir, { voters: [], learners: [] });
  t.deepEqual(r.snapshot(), snap);
  t.is(r.firstIndex(), 8);
  t.is(r.lastIndex(), 7);
  // The hard state of the old log (term 1), its commit raised to the snapshot's committed index.
  t.deepEqual(r.hardState(), { term: 1, vote: 0, commit: 7 });
  t.false(fs.existsSync(`${logPath(dir)}.tmp`));
  r.close();
});

// ---- real Raft cores on disk ----

interface Node {
  id: number;
  dir: string;
  storage: RaftDiskStorage;
  core: RaftCore;
  applied: string[];
}

function startNode(id: number, dir: string, bootstrap: ConfState, seed: number): Node {
  const storage = RaftDiskStorage.open(dir, bootstrap);
  const core = new RaftCore(makeRaftConfig({ id, electionTick: 10 }), storage, new Prng(seed));
  const snap = storage.snapshot();
  const applied = snap.data.length > 0 ? (JSON.parse(Buffer.from(snap.data).toString()) as string[]) : [];
  return { id, dir, storage, core, applied };
}

/** Honours every Ready in contract order; messages go out encoded, as on the wire. */
function drain(n: Node, wire: Buffer[]): void {
  for (let rd = n.core.ready(); rd; rd = n.core.ready()) {
    n.storage.persist(rd);
    for (const m of rd.messages) wire.push(encodeRaftMessage(m));
    if (rd.snapshot) n.applied = JSON.parse(Buffer.from(rd.snapshot.data).toString()) as string[];
    for (const e of rd.committedEntries) {
      if (e.kind === EntryKind.Normal && e.data.length > 0) n.applied.push(Buffer.from(e.data).toString());
    }
    n.core.advance(rd);
  }
}

/** Runs the cluster: tick, drain, deliver (decoded from bytes) until `done` or a step limit. */
function run(nodes: Map<number, Node>, down: Set<number>, done: () => boolean, stepsMax = 2000): void {
  const wire: Buffer[] = [];
  for (let step = 0; step < stepsMax && !done(); step++) {
    for (const n of nodes.values()) if (!down.has(n.id)) n.core.tick();
    for (let round = 0; round < 20; round++) {
      for (const n of nodes.values()) if (!down.has(n.id)) drain(n, wire);
      if (wire.length === 0) break;
      for (const bytes of wire.splice(0)) {
        const decoded = decodeRaftMessage(bytes);
        if (!decoded.ok) throw decoded.error;
        const to = nodes.get(decoded.message.to);
        if (to && !down.has(to.id) && !down.has(decoded.message.from)) to.core.step(decoded.message);
      }
    }
  }
}

function leaderOf(nodes: Map<number, Node>, down: Set<number>): Node | undefined {
  return [...nodes.values()].find((n) => !down.has(n.id) && n.core.status().state === 'Leader');
}

function proposeAll(leader: Node, commands: string[]): void {
  for (const c of commands) leader.core.propose(new Uint8Array(Buffer.from(c)));
}

test('a single voter on disk: committed commands survive crashes and are applied identically', (t) => {
  const dir = tmp();
  const nodes = new Map<number, Node>([[1, startNode(1, dir, one, 1)]]);
  const none = new Set<number>();
  t.true(nodes.get(1)!.storage.fresh);
  run(nodes, none, () => leaderOf(nodes, none) !== undefined);
  const cmds = Array.from({ length: 50 }, (_, i) => `cmd-${i}`);
  proposeAll(nodes.get(1)!, cmds.slice(0, 25));
  run(nodes, none, () => nodes.get(1)!.applied.length === 25);
  // Compact at the applied index; then more commands.
  const n1 = nodes.get(1)!;
  const applied = n1.core.status().applied;
  n1.storage.installCompaction(
    n1.core.compact(applied, new Uint8Array(Buffer.from(JSON.stringify(n1.applied)))),
  );
  proposeAll(n1, cmds.slice(25));
  run(nodes, none, () => nodes.get(1)!.applied.length === 50);
  t.deepEqual(nodes.get(1)!.applied, cmds);
  for (let crash = 0; crash < 3; crash++) {
    // Crash: the objects are dropped without any shutdown work; only the files remain.
    nodes.get(1)!.storage.close();
    nodes.set(1, startNode(1, dir, one, 100 + crash));
    t.false(nodes.get(1)!.storage.fresh);
    run(nodes, none, () => nodes.get(1)!.applied.length >= 50 && leaderOf(nodes, none) !== undefined);
    t.deepEqual(nodes.get(1)!.applied, cmds);
  }
  nodes.get(1)!.storage.close();
});

test('three cores through the codec on disk: crash all, reopen, nothing committed is lost; a lagging node gets a snapshot', (t) => {
  const conf: ConfState = { voters: [1, 2, 3], learners: [] };
  const dirs = [1, 2, 3].map(() => tmp());
  const nodes = new Map<number, Node>([1, 2, 3].map((id) => [id, startNode(id, dirs[id - 1]!, conf, id)]));
  const down = new Set<number>();
  nodes.get(1)!.core.campaign();
  run(nodes, down, () => leaderOf(nodes, down) !== undefined);
  const leader = leaderOf(nodes, down);
  if (!leader) return t.fail('no leader');
  const first = Array.from({ length: 30 }, (_, i) => `a-${i}`);
  proposeAll(leader, first);
  run(nodes, down, () => [...nodes.values()].every((n) => n.applied.length === 30));
  for (const n of nodes.values()) t.deepEqual(n.applied, first);

  // A follower goes away; the others commit more, compact past it, and it comes back via a snapshot.
  const lagging = [...nodes.values()].find((n) => n.id !== leader.id)!;
  down.add(lagging.id);
  const second = Array.from({ length: 30 }, (_, i) => `b-${i}`);
  proposeAll(leader, second);
  run(nodes, down, () => leader.applied.length === 60);
  const idx = leader.core.status().applied;
  leader.storage.installCompaction(
    leader.core.compact(idx, new Uint8Array(Buffer.from(JSON.stringify(leader.applied)))),
  );
  down.delete(lagging.id);
  run(nodes, down, () => [...nodes.values()].every((n) => n.applied.length === 60));
  const expected = [...first, ...second];
  for (const n of nodes.values()) t.deepEqual(n.applied, expected, `node ${n.id}`);
  t.true(lagging.storage.snapshot().meta.index >= idx, 'the lagging node installed a snapshot');

  // Crash everyone; reopen from the same directories with new cores.
  for (const n of nodes.values()) n.storage.close();
  for (const id of [1, 2, 3]) nodes.set(id, startNode(id, dirs[id - 1]!, conf, 10 + id));
  run(nodes, down, () => {
    const l = leaderOf(nodes, down);
    return l !== undefined && [...nodes.values()].every((n) => n.applied.length >= 60);
  });
  for (const n of nodes.values()) t.deepEqual(n.applied, expected, `node ${n.id} after restart`);
  const after = leaderOf(nodes, down);
  if (!after) return t.fail('no leader after restart');
  proposeAll(after, ['c-0', 'c-1']);
  run(nodes, down, () => [...nodes.values()].every((n) => n.applied.length === 62));
  for (const n of nodes.values()) {
    t.deepEqual(n.applied, [...expected, 'c-0', 'c-1']);
    const hs: HardState = n.storage.hardState();
    t.true(hs.commit <= n.storage.lastIndex());
    n.storage.close();
  }
});

// ---- a real process, really killed ----

/** Child: appends entry after entry (compacting often, so log rewrites happen), printing each durable index. */
const childSource = `
import { RaftDiskStorage } from ${JSON.stringify(new URL('../../../node/metadata/raft-disk-storage.js', import.meta.url).href)};
import { spawn } from 'node:child_process';
import fs from 'node:fs';
const dir = process.argv[1];
const conf = { voters: [1], learners: [] };
const s = RaftDiskStorage.open(dir, conf);
const pad = 'x'.repeat(20000);
for (let i = s.lastIndex() + 1; ; i++) {
  const data = new Uint8Array(Buffer.from('v' + i + pad));
  s.persist({ hardState: { term: 1, vote: 1, commit: i - 1 }, entries: [{ index: i, term: 1, kind: 0, data }], snapshot: null });
  if (i % 40 === 0) s.installCompaction({ meta: { index: i - 5, term: 1, conf }, data: new Uint8Array(Buffer.from('s' + (i - 5))) });
  fs.writeSync(1, i + '\\n');
}
`;

function runAndKill(dir: string, killAfter: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', childSource, dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let acked = 0;
    let seen = 0;
    let pending = '';
    child.stdout.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        acked = Number(line);
        seen += 1;
      }
      if (seen >= killAfter) child.kill('SIGKILL');
    });
    child.on('error', reject);
    child.on('exit', (_code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child exited on its own (${signal ?? _code})`));
      else resolve(acked);
    });
  });
}

test('SIGKILL of a process persisting and compacting: every acknowledged entry survives, the log reopens', async (t) => {
  const dir = tmp();
  let acked = 0;
  for (const killAfter of [97, 131, 173, 211]) {
    acked = await runAndKill(dir, killAfter);
    const s = RaftDiskStorage.open(dir, one);
    t.true(s.lastIndex() >= acked, `last ${s.lastIndex()} < acknowledged ${acked}`);
    t.true(s.hardState().commit >= acked - 1 && s.hardState().commit <= s.lastIndex());
    for (const e of all(s))
      t.true(Buffer.from(e.data).toString().startsWith(`v${e.index}x`), `entry ${e.index}`);
    const snap = s.snapshot();
    t.is(Buffer.from(snap.data).toString(), `s${snap.meta.index}`);
    t.is(s.term(s.firstIndex() - 1), 1);
    t.true(s.logSizeBytes() < 4 * 1024 * 1024, `entries.log is ${s.logSizeBytes()} bytes`);
    s.close();
  }
  t.true(acked > 500);
});
