/**
 * RaftNode.readBarrier in process: three real RaftNode drivers (real core, real wire codec, real
 * timers with short ticks) over in-memory storage and an in-memory peer network that can cut
 * links. Waits are for conditions, never fixed sleeps.
 */
import test from 'ava';
import { decodeRaftMessage, encodeRaftMessage } from '../../../node/metadata/raft-codec.js';
import { MetadataState } from '../../../node/metadata/metadata-state.js';
import { type DurableRaftStorage, type PeerSender, RaftNode } from '../../../node/metadata/raft-node.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { type Entry, type HardState, MemoryStorage, type Snapshot } from '../../../node/raft/index.js';
import { eventually } from '../../helpers/eventually.js';

const tickMs = 5;
const electionTick = 10;
const waitMs = 10_000;

class MemoryDurableStorage extends MemoryStorage implements DurableRaftStorage {
  fresh = true;
  persist(rd: { hardState: HardState | null; entries: readonly Entry[]; snapshot: Snapshot | null }): void {
    if (rd.snapshot) this.applySnapshot(rd.snapshot);
    if (rd.entries.length > 0) this.append(rd.entries);
    if (rd.hardState) this.setHardState(rd.hardState);
  }
  installCompaction(snapshot: Snapshot): void {
    this.compact(snapshot);
  }
}

const quiet = { info: () => {}, warn: () => {}, error: () => {} };

class Cluster {
  readonly nodes = new Map<number, RaftNode>();
  /** Directed links that drop everything: from * 1000 + to. */
  private readonly cut = new Set<number>();

  constructor(ids: readonly number[]) {
    for (const id of ids) {
      const peers: PeerSender = {
        send: (to, payload) => {
          if (this.cut.has(id * 1000 + to)) return;
          setImmediate(() => this.nodes.get(to)?.handleMessage(id, payload));
        },
        request: async (to, payload) => {
          const target = this.nodes.get(to);
          if (!target || this.cut.has(id * 1000 + to)) throw new WalrusError(ErrorCode.UNAVAILABLE, 'cut');
          return Buffer.from(await target.handleRequest(id, payload));
        },
        requestSnapshotChunk: async (to, body) => {
          const target = this.nodes.get(to);
          if (!target || this.cut.has(id * 1000 + to)) throw new WalrusError(ErrorCode.UNAVAILABLE, 'cut');
          return Buffer.from(await target.handleSnapshotChunk(id, body));
        },
      };
      const node = new RaftNode({
        nodeId: id,
        storage: new MemoryDurableStorage({ voters: [...ids], learners: [] }),
        peers,
        codec: { encode: encodeRaftMessage, decode: decodeRaftMessage },
        state: new MetadataState(),
        tickMs,
        electionTick,
        heartbeatTick: 1,
        seed: id,
        logger: quiet,
      });
      this.nodes.set(id, node);
    }
    for (const [id, node] of this.nodes) node.start({ bootstrap: id === ids[0] });
  }

  node(id: number): RaftNode {
    return this.nodes.get(id)!;
  }

  isolate(id: number): void {
    for (const other of this.nodes.keys()) {
      if (other === id) continue;
      this.cut.add(id * 1000 + other);
      this.cut.add(other * 1000 + id);
    }
  }

  heal(): void {
    this.cut.clear();
  }

  /** The one node that leads the highest term, once every node agrees on it. */
  async leader(): Promise<number> {
    return eventually(
      'one agreed leader',
      async () => {
        const ids = new Set([...this.nodes.values()].map((n) => n.leaderId));
        const [only] = [...ids];
        return ids.size === 1 && only !== 0 && this.node(only!).isLeader ? only : undefined;
      },
      waitMs,
    );
  }

  stop(): void {
    for (const n of this.nodes.values()) n.stop();
  }
}

async function registered(node: RaftNode, nodeId: number): Promise<number> {
  return node.propose({
    type: 'registerNode',
    node: { nodeId, raftAddr: `r${nodeId}`, clientAddr: `c${nodeId}` },
  });
}

test('readBarrier resolves on the leader after applying what was committed before it', async (t) => {
  const c = new Cluster([1, 2, 3]);
  t.teardown(() => c.stop());
  const leader = await c.leader();
  const index = await registered(c.node(leader), 7);
  await c.node(leader).readBarrier();
  t.true(c.node(leader).state.appliedIndex >= index);
  t.is(c.node(leader).state.nodes.get(7)?.clientAddr, 'c7');
});

test('readBarrier on a follower rejects NOT_LEADER with the leader as hint', async (t) => {
  const c = new Cluster([1, 2, 3]);
  t.teardown(() => c.stop());
  const leader = await c.leader();
  const index = await registered(c.node(leader), leader);
  const follower = [1, 2, 3].find((id) => id !== leader)!;
  await c.node(follower).waitApplied(index); // it knows the leader's address
  const err = await t.throwsAsync(c.node(follower).readBarrier());
  t.true(err instanceof WalrusError);
  t.is((err as WalrusError).code, ErrorCode.NOT_LEADER);
  t.is((err as WalrusError).leaderHint?.nodeId, leader);
  t.is((err as WalrusError).leaderHint?.clientAddr, `c${leader}`);
});

test('concurrent barriers share one ReadIndex round', async (t) => {
  const c = new Cluster([1, 2, 3]);
  t.teardown(() => c.stop());
  const leader = await c.leader();
  await c.node(leader).readBarrier(); // the leader has committed an entry of its term
  const before = c.node(leader).readIndexRounds;
  const callerCount = 50;
  await Promise.all(Array.from({ length: callerCount }, () => c.node(leader).readBarrier()));
  t.is(c.node(leader).readIndexRounds - before, 1);
});

test('a cut-off leader never confirms a barrier: it rejects NOT_LEADER once it steps down', async (t) => {
  const c = new Cluster([1, 2, 3]);
  t.teardown(() => c.stop());
  const old = await c.leader();
  await c.node(old).readBarrier();
  c.isolate(old);
  const pending = c
    .node(old)
    .readBarrier()
    .then(
      () => undefined,
      (error: unknown) => error,
    );
  // The others elect a new leader and commit through it while the old one is cut off.
  const others = [1, 2, 3].filter((id) => id !== old);
  const fresh = await eventually(
    'a new leader among the others',
    async () => others.find((id) => c.node(id).isLeader),
    waitMs,
  );
  const index = await registered(c.node(fresh), 9);
  const err = await pending;
  t.true(err instanceof WalrusError, 'the barrier must not resolve');
  t.is((err as WalrusError).code, ErrorCode.NOT_LEADER);
  t.false(c.node(old).state.appliedIndex >= index, 'the old leader never saw the new write');
  await c.node(fresh).readBarrier();
  t.is(c.node(fresh).state.nodes.get(9)?.raftAddr, 'r9');
  c.heal();
});
