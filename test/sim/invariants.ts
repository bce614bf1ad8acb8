/**
 * Raft safety invariants (election safety, log matching, leader completeness, state machine
 * safety, as in the Raft paper), checked incrementally so they can run after
 * every simulated event: each hook sees only what changed, and global facts (who led which term,
 * which entry was committed at an index) live in compact maps.
 */
import {
  decodeConfEntry,
  type Entry,
  EntryKind,
  type Message,
  MessageType,
  type RaftCore,
  type RaftStorage,
  type ReadState,
} from '../../node/raft/index.js';

export class InvariantViolation extends Error {
  constructor(
    readonly invariant: string,
    detail: string,
  ) {
    super(`${invariant}: ${detail}`);
    this.name = 'InvariantViolation';
  }
}

/** A short identity of an entry's payload: proposals carry a unique id in their 8 bytes. */
export function entryKey(e: Entry): string | number {
  if (e.kind === EntryKind.Conf) return `c${new TextDecoder().decode(e.data)}`;
  if (e.data.length === 0) return 'empty';
  if (e.data.length === 8) return new DataView(e.data.buffer, e.data.byteOffset, 8).getFloat64(0);
  return `b${Array.from(e.data).join(',')}`;
}

/** Rolling hash of the applied sequence, so snapshots can be compared to what others applied. */
export function mixHash(h: number, e: Entry): number {
  const k = entryKey(e);
  let x = typeof k === 'number' ? k | 0 : k.length * 7919;
  if (typeof k === 'string') for (let i = 0; i < k.length; i++) x = Math.imul(x ^ k.charCodeAt(i), 16777619);
  return (Math.imul(h ^ e.term, 2654435761) ^ x ^ Math.imul(e.index, 40503)) >>> 0;
}

const termBits = 2 ** 21;

export class Invariants {
  /** ElectionSafety: term → the one leader of that term. */
  private readonly leaderOfTerm = new Map<number, number>();
  /** LogMatching: (index, term) → payload key and the term of the entry before it. */
  private readonly registry = new Map<number, { key: string | number; prevTerm: number }>();
  /** StateMachineSafety: index → the entry applied there (by anyone) and the hash after it. */
  private readonly appliedTerm: number[] = [];
  private readonly appliedKey: (string | number)[] = [];
  private readonly hashAt: number[] = [];
  maxApplied = 0;
  /** The highest commit index any node has known: the cluster's commit index (never decreases). */
  maxCommitKnown = 0;
  /** The highest term any node has led. */
  private maxLeaderTerm = 0;
  /** ReadIndex requests not answered yet: ctx → who asked in which term, and what was known then. */
  private readonly readRequests = new Map<
    number,
    { node: number; term: number; commitBefore: number; leaderTermBefore: number }
  >();
  checks = 0;

  fail(invariant: string, detail: string): never {
    throw new InvariantViolation(invariant, detail);
  }

  /** A node durably appended `entries` after an entry of term `prevTerm`. */
  onPersistEntries(
    nodeId: number,
    prevTerm: number,
    entries: readonly Entry[],
    wasLeader: boolean,
    lastIndexBefore: number,
  ): void {
    this.checks++;
    if (wasLeader && entries[0]!.index <= lastIndexBefore) {
      this.fail(
        'LeaderAppendOnly',
        `leader ${nodeId} overwrote its log at ${entries[0]!.index} (last ${lastIndexBefore})`,
      );
    }
    let pt = prevTerm;
    for (const e of entries) {
      const id = e.index * termBits + e.term;
      const key = entryKey(e);
      const seen = this.registry.get(id);
      if (seen === undefined) {
        this.registry.set(id, { key, prevTerm: pt });
      } else if (seen.key !== key || seen.prevTerm !== pt) {
        this.fail(
          'LogMatching',
          `node ${nodeId} holds entry (${e.index}, term ${e.term}) = ${String(key)} after term ${pt}; another log has ${String(seen.key)} after term ${seen.prevTerm}`,
        );
      }
      pt = e.term;
    }
  }

  onHardState(
    nodeId: number,
    prev: { term: number; commit: number },
    next: { term: number; commit: number },
  ): void {
    this.checks++;
    if (next.term < prev.term) this.fail('MonotonicTerm', `node ${nodeId} term ${prev.term} → ${next.term}`);
    if (next.commit < prev.commit)
      this.fail('MonotonicCommit', `node ${nodeId} durable commit ${prev.commit} → ${next.commit}`);
  }

  /** A node applied entry e; `hash` is its state-machine hash after it. */
  onApply(nodeId: number, e: Entry, hash: number): void {
    this.checks++;
    const i = e.index;
    const t = this.appliedTerm[i];
    if (t === undefined) {
      this.appliedTerm[i] = e.term;
      this.appliedKey[i] = entryKey(e);
      this.hashAt[i] = hash;
      if (i > this.maxApplied) this.maxApplied = i;
      return;
    }
    if (t !== e.term || this.appliedKey[i] !== entryKey(e)) {
      this.fail(
        'StateMachineSafety',
        `node ${nodeId} applied (${i}, term ${e.term}) but (${i}, term ${t}) was applied elsewhere`,
      );
    }
    if (this.hashAt[i] !== hash)
      this.fail('StateMachineSafety', `node ${nodeId} state hash differs after index ${i}`);
  }

  /** A node restored its state machine from a snapshot at `index` with `hash`. */
  onRestore(nodeId: number, index: number, hash: number): void {
    const h = this.hashAt[index];
    if (index > 0 && h !== undefined && h !== hash) {
      this.fail('StateMachineSafety', `node ${nodeId} restored a snapshot at ${index} whose state differs`);
    }
  }

  /** Called whenever a node is seen as leader. */
  onLeader(core: RaftCore): void {
    const term = core.currentTerm;
    const known = this.leaderOfTerm.get(term);
    if (known === core.id) return;
    if (known !== undefined)
      this.fail('ElectionSafety', `nodes ${known} and ${core.id} both lead term ${term}`);
    this.leaderOfTerm.set(term, core.id);
    if (term > this.maxLeaderTerm) this.maxLeaderTerm = term;
    // LeaderCompleteness: every entry applied (hence committed) anywhere is in the new leader's log.
    const log = core.log;
    if (log.lastIndex() < this.maxApplied) {
      this.fail(
        'LeaderCompleteness',
        `leader ${core.id} of term ${term} ends at ${log.lastIndex()} < committed ${this.maxApplied}`,
      );
    }
    for (let i = log.firstIndex(); i <= this.maxApplied; i++) {
      const t = this.appliedTerm[i];
      if (t !== undefined && log.term(i) !== t) {
        this.fail(
          'LeaderCompleteness',
          `leader ${core.id} of term ${term} has term ${log.term(i)} at committed index ${i} (term ${t})`,
        );
      }
    }
  }

  /**
   * On every send: MessageTermsLtCurrentTerm (pre-votes are about the next term by design), and
   * PersistBeforeSend: an ack or a granted vote leaves only once what it promises is durable.
   */
  onSend(m: Message, senderTerm: number, durable: RaftStorage | null): void {
    if (m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp) return;
    if (m.term > senderTerm)
      this.fail('MessageTerm', `node ${m.from} sent ${m.type} for term ${m.term} in term ${senderTerm}`);
    if (durable === null) return;
    if (m.type === MessageType.AppResp && !m.reject && m.index > durable.lastIndex()) {
      this.fail(
        'PersistBeforeSend',
        `node ${m.from} acked index ${m.index} with only ${durable.lastIndex()} durable`,
      );
    }
    if (m.type === MessageType.VoteResp && !m.reject) {
      // A durable higher term supersedes the vote: the node can never act in the vote's term again.
      // (A node resuming from a pause may grant a vote and learn a higher term in one Ready, whose
      // hard state then holds only the higher term.)
      const hs = durable.hardState();
      if (hs.term < m.term || (hs.term === m.term && hs.vote !== m.to)) {
        this.fail(
          'PersistBeforeSend',
          `node ${m.from} granted its term-${m.term} vote to ${m.to} before persisting it`,
        );
      }
    }
  }

  /**
   * After a node processed its Readies: checks that need the node's whole state.
   *
   * AtMostOneUncommittedConf: no durable log holds two conf entries above the CLUSTER's commit
   * index (the highest any node knows), i.e. at most one configuration is not yet committed. The
   * leader proposes a change only once the previous one is applied (so committed), and any log is
   * a prefix of some leader's log, so this holds for every node. (The leader's own commit index
   * is not the cluster's: a new leader may hold a change its predecessor committed, and the next
   * one, before it learns that commit; seed 81178 of the old checker.)
   */
  afterReady(core: RaftCore, durableLastIndex: number, confIndexes: readonly number[]): void {
    this.checks++;
    if (core.log.committed > durableLastIndex) {
      this.fail(
        'CommittedIsDurable',
        `node ${core.id} commit ${core.log.committed} > durable last index ${durableLastIndex}`,
      );
    }
    if (core.log.committed > this.maxCommitKnown) this.maxCommitKnown = core.log.committed;
    let uncommitted = 0;
    for (const i of confIndexes) if (i > this.maxCommitKnown) uncommitted++;
    if (uncommitted > 1) {
      this.fail(
        'AtMostOneUncommittedConf',
        `node ${core.id} holds conf entries at [${confIndexes}], ${uncommitted} above the cluster's commit ${this.maxCommitKnown}`,
      );
    }
    if (core.role === 'Leader') this.onLeader(core);
  }

  /** `node`, believing it leads `term`, accepted ReadIndex request `ctx`. */
  onReadRequest(ctx: number, node: number, term: number): void {
    this.readRequests.set(ctx, {
      node,
      term,
      commitBefore: this.maxCommitKnown,
      leaderTermBefore: this.maxLeaderTerm,
    });
  }

  /**
   * ReadIndexLinearizable: a read state answers a request of the same node, once; no leader of a
   * newer term had been elected before the request (a deposed leader never confirms a read); and
   * its index covers every index committed anywhere before the request.
   */
  onReadState(node: number, rs: ReadState): void {
    this.checks++;
    const req = typeof rs.ctx === 'number' ? this.readRequests.get(rs.ctx) : undefined;
    if (req === undefined || req.node !== node) {
      this.fail(
        'ReadIndexLinearizable',
        `node ${node} answered read ${String(rs.ctx)} it was not asked (or twice)`,
      );
    }
    this.readRequests.delete(rs.ctx as number);
    if (req.leaderTermBefore > req.term) {
      this.fail(
        'ReadIndexLinearizable',
        `node ${node} confirmed a read of term ${req.term} asked after a leader of term ${req.leaderTermBefore} was elected`,
      );
    }
    if (rs.index < req.commitBefore) {
      this.fail(
        'ReadIndexLinearizable',
        `node ${node} read at index ${rs.index} < ${req.commitBefore} committed before the request`,
      );
    }
  }

  /** A leader appended a promote of `learner`; the learner must hold everything committed. */
  onPromote(
    leader: RaftCore,
    learner: number,
    learnerLastIndex: number,
    learnerTermAtCommit: number | undefined,
    learnerSnapIndex: number,
  ): void {
    const c = leader.log.committed;
    const caughtUp =
      learnerSnapIndex >= c || (learnerLastIndex >= c && learnerTermAtCommit === leader.log.term(c));
    if (!caughtUp)
      this.fail(
        'PromoteOnlyCaughtUp',
        `leader ${leader.id} promoted learner ${learner} lacking committed ${c}`,
      );
  }
}

export function promotedLearner(e: Entry): number | undefined {
  if (e.kind !== EntryKind.Conf) return undefined;
  const d = decodeConfEntry(e.data);
  return d?.change.type === 'promote' ? d.change.nodeId : undefined;
}
