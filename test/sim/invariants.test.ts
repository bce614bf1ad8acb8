/**
 * The simulator's checker itself: a check that cries wolf hides real failures as surely as one
 * that never bites. States below are taken from runs that tripped the old checker.
 */
import test from 'ava';
import type { RaftCore } from '../../node/raft/index.js';
import { InvariantViolation, Invariants } from './invariants.js';

/** Just what Invariants.afterReady reads of a core. */
function fakeCore(
  id: number,
  role: RaftCore['role'],
  term: number,
  committed: number,
  last: number,
): RaftCore {
  return {
    id,
    role,
    currentTerm: term,
    log: { committed, firstIndex: () => 1, lastIndex: () => last, term: () => term },
  } as unknown as RaftCore;
}

test('AtMostOneUncommittedConf counts against the cluster commit, not a new leader’s lagging one (seed 81178)', (t) => {
  // Leader 1 of term 20 inherited conf entries at 207 (committed by its predecessor: node 2 knows
  // commit 209) and 210 (the next change), but has itself only learnt commit 206.
  const inv = new Invariants();
  inv.afterReady(fakeCore(2, 'Follower', 20, 209, 211), 211, [207, 210]);
  t.notThrows(() => inv.afterReady(fakeCore(1, 'Leader', 20, 206, 211), 211, [207, 210]));
});

test('AtMostOneUncommittedConf still fails two conf entries above the cluster commit', (t) => {
  const inv = new Invariants();
  inv.afterReady(fakeCore(2, 'Follower', 20, 206, 211), 211, [207]);
  const err = t.throws(() => inv.afterReady(fakeCore(1, 'Leader', 20, 206, 211), 211, [207, 210]));
  t.true(err instanceof InvariantViolation);
  t.regex(err!.message, /AtMostOneUncommittedConf/);
  // Any node's log, not only a leader's.
  const inv2 = new Invariants();
  t.throws(() => inv2.afterReady(fakeCore(3, 'Follower', 20, 0, 211), 211, [207, 210]));
});
