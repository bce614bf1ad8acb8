/**
 * node/replication: the pure decisions of segment replication (quorums, the leader's flow to each
 * follower, what a follower accepts, where a recovery seals). No clock, timers, I/O or randomness;
 * the topic service and the controller drive them (docs/replication.md).
 */
export { ackQuorum, fenceQuorum, highWatermark } from './quorum.js';
export { type FenceReport, type RecoveryPlan, planRecovery } from './recovery.js';
export {
  type LocalReplicaState,
  type ReplicaAppendAsk,
  type ReplicaAppendDecision,
  decideReplicaAppend,
} from './replica-gate.js';
export { FollowerFlow, type FollowerMode, followerFlowLimits } from './follower-flow.js';
