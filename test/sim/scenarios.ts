/**
 * Scripted simulator scenarios: a fixed story told through `SimControl` over the seeded world, so
 * network delays, tick phases and the Raft options still vary with the seed while the shape of the
 * fault stays the same. Each scenario ends with the simulator's liveness mode.
 */
import { ConfChangeType, MessageType, RaftError } from '../../node/raft/index.js';
import type { DerivedOptions, SimControl } from './simulation.js';

/** Options every scenario run pins: three voters, no random crashes or extra victims. */
export const scenarioOverrides: Partial<DerivedOptions> = {
  initialVoters: 3,
  midReadyCrashRate: 0,
  livenessKeepOneDown: false,
};

function tryRaft(f: () => void): boolean {
  try {
    f();
    return true;
  } catch (err) {
    if (err instanceof RaftError) return false;
    throw err;
  }
}

/**
 * Defect 6 (issue 8): voters {1,2,3}, learner 4. Leader 2, cut off, appends "promote 4" nobody
 * else receives. Another voter X is elected with the third voter Y's vote and replicates an entry
 * of its newer term to learner 4 only; then X dies for good. Survivors: Y (oldest log), 2 (log
 * ends in the uncommitted promote), 4 (newer term than 2). With configurations effective on
 * append, 2 needs 3 of {1,2,3,4} and 4 refuses it (4's log is newer), while Y needs 2 (which
 * refuses: 2's log is newer): no leader, ever. Effective on apply, 2 still uses {1,2,3} and wins
 * with Y's vote.
 */
export function uncommittedPromoteScenario(ctl: SimControl): void {
  ctl.runUntil('a leader', () => ctl.leader() !== undefined);
  ctl.runUntil('node 2 leads', () => {
    const l = ctl.leader();
    if (l === 2) return true;
    if (l !== undefined) tryRaft(() => ctl.core(l)!.transferLeadership(2));
    return false;
  });
  let learner = 0;
  ctl.runUntil('node 2 accepts a configuration change', () =>
    tryRaft(() => {
      learner = ctl.addLearner(2);
    }),
  );
  const caughtUp = (): boolean => {
    const l = ctl.core(2);
    if (l?.role !== 'Leader') return false;
    const st = l.status();
    const pr = st.progress[learner];
    return (
      pr !== undefined &&
      pr.match >= st.commit &&
      [1, 2, 3, learner].every((id) => ctl.core(id)?.status().learners.includes(learner) === true)
    );
  };
  ctl.runUntil('the learner is caught up and known everywhere', caughtUp);
  const term2 = ctl.core(2)!.currentTerm;
  ctl.isolate(2);
  ctl.proposeConfChange(2, { type: ConfChangeType.Promote, nodeId: learner });
  // Leaders of newer terms reach the learner only.
  ctl.dropWhere(
    (m) =>
      (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) &&
      m.term > term2 &&
      m.to !== learner,
  );
  let x = 0;
  ctl.runUntil('another voter leads and the learner holds an entry of its term', () => {
    for (const id of [1, 3]) {
      const c = ctl.core(id);
      const l = ctl.core(learner);
      if (c?.role === 'Leader' && l !== null && l.log.lastTerm() === c.currentTerm) {
        x = id;
        return true;
      }
    }
    return false;
  });
  ctl.killForGood(x);
  ctl.healLinks();
}
