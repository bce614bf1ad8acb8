/**
 * Raft safety of whole nodes, reusing the Raft simulator's incremental checks (../invariants.ts):
 * the storage every RaftNode writes through and the codec it sends with are wrapped, so every
 * durable append and hard state (LogMatching, LeaderAppendOnly, MonotonicTerm/Commit), every
 * message (MessageTerm, PersistBeforeSend) and every applied entry (StateMachineSafety) is seen;
 * after each event the leaders are checked (ElectionSafety, LeaderCompleteness) and every node's
 * commit index against its durable log (CommittedIsDurable). Entry payloads are reduced to a
 * checksum first, so comparing them costs the same whatever their size.
 */
import { crc32c } from '../../../node/storage-io/index.js';
import type { DurableRaftStorage, RaftCodec } from '../../../node/metadata/raft-node.js';
import {
  type Entry,
  EntryKind,
  type HardState,
  type Message,
  type RaftCore,
  type Snapshot,
} from '../../../node/raft/index.js';
import { Invariants } from '../invariants.js';

/** The entry with its payload replaced by 8 bytes naming it (invariants.ts keys 8-byte payloads by value). */
function digest(e: Entry): Entry {
  if (e.kind === EntryKind.Conf || e.data.length === 0) return e;
  const data = new Uint8Array(8);
  new DataView(data.buffer).setFloat64(0, crc32c(e.data) + e.data.length * 2 ** 32);
  return { ...e, data };
}

export class RaftChecks {
  readonly inv = new Invariants();
  /** Durable hard state per node id (a wiped node starts again from zero). */
  private readonly hard = new Map<number, HardState>();

  forget(nodeId: number): void {
    this.hard.delete(nodeId);
  }

  /** Wraps a node's storage: each successful persist is checked against every other log. */
  storage(nodeId: number, inner: DurableRaftStorage, core: () => RaftCore | null): DurableRaftStorage {
    const checks = this;
    return {
      get fresh() {
        return inner.fresh;
      },
      hardState: () => inner.hardState(),
      snapshot: () => inner.snapshot(),
      firstIndex: () => inner.firstIndex(),
      lastIndex: () => inner.lastIndex(),
      term: (i) => inner.term(i),
      entries: (lo, hi, maxBytes) => inner.entries(lo, hi, maxBytes),
      installCompaction: (snapshot: Snapshot) => inner.installCompaction(snapshot),
      persist(rd) {
        const lastBefore = inner.lastIndex();
        const first = rd.entries[0];
        const wasLeader = core()?.role === 'Leader';
        inner.persist(rd);
        if (first !== undefined) {
          const prevTerm = inner.term(first.index - 1) ?? 0;
          checks.inv.onPersistEntries(nodeId, prevTerm, rd.entries.map(digest), wasLeader, lastBefore);
        }
        checks.onHardState(nodeId, inner.hardState());
      },
    };
  }

  /** Seeds a restarted node's durable hard state (what recovery found). */
  onHardState(nodeId: number, next: HardState): void {
    const prev = this.hard.get(nodeId);
    if (prev !== undefined) this.inv.onHardState(nodeId, prev, next);
    this.hard.set(nodeId, next);
  }

  /** Wraps a codec: every message a node sends is checked as it is encoded. */
  codec(inner: RaftCodec, core: () => RaftCore | null, storage: DurableRaftStorage): RaftCodec {
    return {
      encode: (m: Message) => {
        const c = core();
        if (c !== null) this.inv.onSend(m, c.currentTerm, storage);
        return inner.encode(m);
      },
      decode: (bytes) => inner.decode(bytes),
    };
  }

  /** A node applied the entry at `index` (read back from its storage). */
  onApply(nodeId: number, storage: DurableRaftStorage, index: number): void {
    const e = storage.entries(index, index + 1, Number.MAX_SAFE_INTEGER)[0];
    if (e !== undefined) this.inv.onApply(nodeId, digest(e), 0);
  }

  /** After each event, for each live node. */
  afterEvent(core: RaftCore, storage: DurableRaftStorage): void {
    if (core.role === 'Leader') this.inv.onLeader(core);
    // Between a message and the Ready that persists it the commit may point into the unstable log.
    if (!core.hasReady() && core.log.committed > storage.lastIndex()) {
      this.inv.fail(
        'CommittedIsDurable',
        `node ${core.id} commit ${core.log.committed} > durable last index ${storage.lastIndex()}`,
      );
    }
  }
}
