/**
 * Test harness for the Raft core: nodes over MemoryStorage with a synchronous driver, and an
 * in-memory network that delivers messages until quiet, with drop/cut/isolate filters (the idea
 * of etcd-raft's `network`, written for our API).
 */
import assert from 'node:assert/strict';
import {
  type ConfState,
  type Entry,
  EntryKind,
  MemoryStorage,
  type Message,
  MessageType,
  makeRaftConfig,
  Prng,
  RaftCore,
  type RaftConfig,
  type Ready,
  type ReadState,
} from '../../../node/raft/index.js';

export interface TestNode {
  readonly core: RaftCore;
  readonly storage: MemoryStorage;
  /** Every entry applied, in order. */
  readonly applied: Entry[];
  /** Every confirmed read (Ready.readStates), in order. */
  readonly reads: ReadState[];
}

export const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
export const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

export function makeConf(voters: readonly number[], learners: readonly number[] = []): ConfState {
  return { voters: [...voters], learners: [...learners] };
}

/** A node whose storage holds the bootstrap configuration (and optional preexisting state). */
export function makeNode(
  id: number,
  voters: readonly number[],
  opts: Partial<RaftConfig> & { learners?: readonly number[]; storage?: MemoryStorage; seed?: number } = {},
): TestNode {
  const { learners, storage: given, seed, ...cfg } = opts;
  const storage = given ?? new MemoryStorage(makeConf(voters, learners ?? []));
  const core = new RaftCore(
    makeRaftConfig({ id, preVote: false, checkQuorum: false, ...cfg }),
    storage,
    new Prng(seed ?? id),
  );
  return { core, storage, applied: [], reads: [] };
}

/** Storage pre-filled with entries of the given terms at indexes 1.. and a hard state term. */
export function storageWithTerms(
  voters: readonly number[],
  terms: readonly number[],
  hardTerm?: number,
): MemoryStorage {
  const s = new MemoryStorage(makeConf(voters));
  s.append(terms.map((term, k) => ({ term, index: k + 1, kind: EntryKind.Normal, data: new Uint8Array(0) })));
  s.setHardState({ term: hardTerm ?? terms[terms.length - 1] ?? 0, vote: 0, commit: 0 });
  return s;
}

/** Runs the Ready loop like a real driver (persist, collect messages, apply, advance). */
export function drain(n: TestNode): Message[] {
  const out: Message[] = [];
  for (let k = 0; k < 100; k++) {
    const rd = n.core.ready();
    if (!rd) return out;
    persist(n, rd);
    out.push(...rd.messages);
    n.applied.push(...rd.committedEntries);
    n.reads.push(...rd.readStates);
    n.core.advance(rd);
  }
  assert.fail('ready loop did not settle');
}

export function persist(n: TestNode, rd: Ready): void {
  if (rd.snapshot) n.storage.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0) n.storage.append(rd.entries);
  if (rd.hardState) n.storage.setHardState(rd.hardState);
}

/** A message with every field defaulted; tests set what they need. */
export function msg(p: Partial<Message> & Pick<Message, 'type' | 'from' | 'to'>): Message {
  return {
    term: 0,
    logTerm: 0,
    index: 0,
    entries: [],
    commit: 0,
    reject: false,
    rejectHint: 0,
    snapshot: null,
    transfer: false,
    ...p,
  };
}

export function ents(terms: readonly number[], startIndex = 1): Entry[] {
  return terms.map((term, k) => ({
    term,
    index: startIndex + k,
    kind: EntryKind.Normal,
    data: new Uint8Array(0),
  }));
}

const deliveriesMax = 100_000;

export class Net {
  readonly nodes = new Map<number, TestNode>();
  /** Directed links that drop everything: "from>to". */
  private readonly cutLinks = new Set<string>();
  /** Message types dropped everywhere. */
  readonly ignored = new Set<MessageType>();
  /** Every message delivered, for assertions. */
  readonly log: Message[] = [];

  constructor(nodes: readonly TestNode[]) {
    for (const n of nodes) this.nodes.set(n.core.id, n);
  }

  /** A cluster of `ids` voters with the same options. */
  static of(ids: readonly number[], opts: Partial<RaftConfig> = {}): Net {
    return new Net(ids.map((id) => makeNode(id, ids, opts)));
  }

  node(id: number): TestNode {
    const n = this.nodes.get(id);
    assert.ok(n, `no node ${id}`);
    return n;
  }

  core(id: number): RaftCore {
    return this.node(id).core;
  }

  cut(a: number, b: number): void {
    this.cutLinks.add(`${a}>${b}`);
    this.cutLinks.add(`${b}>${a}`);
  }

  isolate(id: number): void {
    for (const other of this.nodes.keys()) if (other !== id) this.cut(id, other);
  }

  recover(): void {
    this.cutLinks.clear();
    this.ignored.clear();
  }

  /** Delivers `msgs` and everything they cause until the network is quiet. */
  send(msgs: Message[]): void {
    const queue = msgs.slice();
    for (let k = 0; queue.length > 0; k++) {
      assert.ok(k < deliveriesMax, 'network did not quiesce');
      const m = queue.shift()!;
      if (this.cutLinks.has(`${m.from}>${m.to}`) || this.ignored.has(m.type)) continue;
      const n = this.nodes.get(m.to);
      if (!n) continue;
      this.log.push(m);
      n.core.step(m);
      queue.push(...drain(n));
    }
  }

  /** Drains every node and delivers until quiet. */
  stabilize(): void {
    const all: Message[] = [];
    for (const n of this.nodes.values()) all.push(...drain(n));
    this.send(all);
  }

  campaign(id: number): void {
    this.core(id).campaign();
    this.send(drain(this.node(id)));
  }

  /** Node `id` asks for a read point (ReadIndex); what it sends is delivered. */
  read(id: number, ctx: number): void {
    this.core(id).readIndex(ctx);
    this.send(drain(this.node(id)));
  }

  propose(id: number, data: string): void {
    this.core(id).propose(enc(data));
    this.send(drain(this.node(id)));
  }

  /** Ticks node `id` n times, delivering what each tick produces. */
  tick(id: number, n: number): void {
    for (let k = 0; k < n; k++) {
      this.core(id).tick();
      this.send(drain(this.node(id)));
    }
  }

  /** Ticks every node once per round, `rounds` times. */
  tickAll(rounds: number): void {
    for (let r = 0; r < rounds; r++) {
      for (const n of this.nodes.values()) n.core.tick();
      this.stabilize();
    }
  }
}

export function appliedData(n: TestNode): string[] {
  return n.applied.filter((e) => e.kind === EntryKind.Normal && e.data.length > 0).map((e) => dec(e.data));
}

export { MessageType };
