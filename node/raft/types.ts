/**
 * The data the Raft core exchanges with its driver: log entries, hard state, configuration state,
 * snapshots and peer messages. Plain readonly records so they can be encoded by any transport and
 * compared in tests; node ids are positive integers and 0 means "none".
 */

/** The "no node" id: no vote cast, no leader known. */
export const NONE = 0;

export const EntryKind = {
  /** An application command (or the empty entry a new leader appends). */
  Normal: 0,
  /** A configuration change; `data` is `encodeConfEntry` output; takes effect when applied. */
  Conf: 1,
} as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];

export interface Entry {
  readonly term: number;
  readonly index: number;
  readonly kind: EntryKind;
  readonly data: Uint8Array;
}

/** What must be durable before a node acts on it (votes, acks): Raft's persistent state. */
export interface HardState {
  readonly term: number;
  /** The candidate voted for in `term`, or NONE. */
  readonly vote: number;
  /** Highest index known committed; never decreases (durably). */
  readonly commit: number;
}

/** A cluster configuration: voters count in quorums, learners only receive the log. */
export interface ConfState {
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

export interface SnapshotMeta {
  /** Last log index the snapshot covers (the compacted prefix ends here). */
  readonly index: number;
  /** Term of the entry at `index`. */
  readonly term: number;
  /** The configuration in force at `index`. */
  readonly conf: ConfState;
}

/** A state-machine snapshot; `data` is opaque to the core. */
export interface Snapshot {
  readonly meta: SnapshotMeta;
  readonly data: Uint8Array;
}

export const MessageType = {
  /** Leader → follower: entries after (index, logTerm), plus the leader's commit. */
  App: 'App',
  /** Follower → leader: `index` accepted (match), or `reject` with a back-tracking hint. */
  AppResp: 'AppResp',
  Heartbeat: 'Heartbeat',
  HeartbeatResp: 'HeartbeatResp',
  Vote: 'Vote',
  VoteResp: 'VoteResp',
  PreVote: 'PreVote',
  PreVoteResp: 'PreVoteResp',
  /** Leader → follower: InstallSnapshot. */
  Snap: 'Snap',
  /** Leader → transfer target: campaign now, bypassing the leader lease. */
  TimeoutNow: 'TimeoutNow',
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/**
 * One peer message. Unused fields are 0 / false / empty / null so every message has one shape
 * (cheap to create, simple to validate).
 */
export interface Message {
  readonly type: MessageType;
  readonly from: number;
  readonly to: number;
  readonly term: number;
  /** App: term of entry `index`; Vote: candidate's last term; AppResp reject: term at rejectHint. */
  readonly logTerm: number;
  /** App: index preceding `entries`; AppResp: match (or rejected index); Vote: last index. */
  readonly index: number;
  readonly entries: readonly Entry[];
  readonly commit: number;
  readonly reject: boolean;
  /** AppResp reject: the follower's hint where the leader should probe next. */
  readonly rejectHint: number;
  readonly snapshot: Snapshot | null;
  /** Vote/PreVote: sent because of a leader transfer; voters skip the leader-lease check. */
  readonly transfer: boolean;
}

export const ConfChangeType = {
  AddLearner: 'addLearner',
  /** Learner → voter; the leader refuses it until the learner holds every committed entry. */
  Promote: 'promote',
  /** Removes a voter (the leader too: it steps down once it applies the change) or a learner. */
  Remove: 'remove',
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly nodeId: number;
}

/** What the application attaches to a ReadIndex request to recognise its answer. */
export type ReadContext = Uint8Array | number;

/**
 * A confirmed ReadIndex request (etcd-raft's ReadOnlySafe): when it was made this node was the
 * leader and `index` was its commit index; a quorum has since confirmed the leadership. A read
 * served once the state machine has applied `index` is linearizable.
 */
export interface ReadState {
  readonly index: number;
  readonly ctx: ReadContext;
}

export type RaftState = 'Follower' | 'PreCandidate' | 'Candidate' | 'Leader';

export type ProgressState = 'probe' | 'replicate' | 'snapshot';
