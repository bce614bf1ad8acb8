/**
 * One simulated node, assembled as node/bin/walrus-node.ts assembles a real one (keep the two in
 * step): RaftDiskStorage, RaftIdentity and the WAL on the node's SimDisk, MetadataState, the
 * PeerIdentityGuard, RaftNode, TopicService, Controller, Monitor and RequestHandler, with the
 * simulated scheduler, network and clock instead of real ones. `boot` mirrors main(): open the
 * storage (refusing to start on damage), listen for peers, start Raft, join (retrying; a refusal
 * of its identity stops the node for good), replay, recover the topics, register, learn the
 * cluster id, listen for clients, start the monitor. Differences from walrus-node, all forced by
 * the simulation: the join retries go to any member the simulator names (an operator would point
 * --join elsewhere), the Raft seed comes from the run's seed, and process exit is modelled by the
 * simulator (`SimCluster`).
 *
 * `NodeBugs` put known defects back (TEST ONLY), to show the simulator finds them.
 */
import path from 'node:path';
import { Controller, controllerLimits } from '../../../node/controller/controller.js';
import { Monitor } from '../../../node/controller/monitor.js';
import { PeerIdentityGuard, ensureClusterId } from '../../../node/metadata/cluster-identity.js';
import { isIdentityId } from '../../../node/metadata/identity-id.js';
import { type MetaCommand, MetadataState } from '../../../node/metadata/metadata-state.js';
import { RaftDiskStorage } from '../../../node/metadata/raft-disk-storage.js';
import { decodeRaftMessage, encodeRaftMessage } from '../../../node/metadata/raft-codec.js';
import { RaftIdentity } from '../../../node/metadata/raft-identity.js';
import {
  type DurableRaftStorage,
  type JoinReply,
  type PeerRequest,
  RaftNode,
} from '../../../node/metadata/raft-node.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { binaryMarker } from '../../../node/protocol/frame.js';
import { isReplicationPayload } from '../../../node/protocol/replication-codec.js';
import type { Prng, RaftCore } from '../../../node/raft/index.js';
import { raftClusterView } from '../../../node/bin/peers.js';
import { RequestHandler } from '../../../node/server/request-handler.js';
import { TopicService } from '../../../node/topics/topic-service.js';
import { mkdirDurably } from '../../../node/storage-io/index.js';
import { Wal } from '../../../node/wal/index.js';
import { ackQuorum } from '../../../node/replication/index.js';
import { sleep } from '../../../node/scheduler.js';
import type { Logger } from '../../../node/log.js';
import type { RaftChecks } from './raft-checks.js';
import { type WalObserver, observeWal } from './replication-checks.js';
import { type SimDisk, SimFileIo } from './sim-disk.js';
import { type SimNetwork, SimPeers } from './sim-network.js';
import { SimProcess, SimScheduler, type SimWorld } from './sim-world.js';

/** TEST ONLY: defects of issue 8 put back into the node's wiring. */
export interface NodeBugs {
  /** Defect 5: installing a snapshot does not reconcile the topic layer with it. */
  readonly skipReconcileOnSnapshot?: boolean;
  /** Defect 2: leader-only reads (consumer get / read-next) without a read barrier. */
  readonly noReadBarrier?: boolean;
  /** Defect 7: remove-node straight through Raft, without handing off the segments it leads (the workload's). */
  readonly removeWithoutHandOff?: boolean;
  /** Defect 4: a snapshot goes out as one message, not in chunks (a test-local patch of the driver). */
  readonly snapshotAsOneMessage?: boolean;
  /** Replication: a segment leader's high watermark needs one replica fewer than a majority. */
  readonly quorumMinusOne?: boolean;
  /** Replication: a replica never cuts its copy (the tail past a seal stays). */
  readonly keepTailPastSeal?: boolean;
}

/** Settings every node of a run shares (derived from the seed). */
export interface NodeSettings {
  readonly tickMs: number;
  readonly electionTick: number;
  readonly segmentEntryCountMax: number;
  readonly compactEntryCount: number;
  readonly monitorCheckMs: number;
  readonly bugs: NodeBugs;
}

/**
 * TEST ONLY (NodeBugs.quorumMinusOne): every replicator this node makes computes its high
 * watermark from one replica fewer than ackQuorum (SegmentReplicator.advance, with that one change).
 */
function weakenQuorum(topics: TopicService): void {
  type Waiting = { end: number; resolve: () => void; timer: unknown };
  type Rep = {
    isFrozen: boolean;
    localEnd: number;
    followers: Map<number, { ackedEnd: number }>;
    replicas: readonly number[];
    baseOffset: number;
    committedEnd: number;
    waiting: Waiting[];
    ctx: { scheduler: { clearTimeout(t: unknown): void } };
    onCommitted: (end: number) => void;
    advance: () => void;
  };
  const appender = topics.appender as unknown as {
    startReplicator(name: string, rt: { replicator: Rep | null }): void;
  };
  const start = appender.startReplicator.bind(appender);
  appender.startReplicator = (name, rt) => {
    start(name, rt);
    const rep = rt.replicator;
    if (rep === null) return;
    rep.advance = function (this: Rep) {
      if (this.isFrozen) return;
      const ends = [this.localEnd, ...[...this.followers.values()].map((f) => f.ackedEnd)].sort(
        (a, b) => b - a,
      );
      const need = Math.max(1, ackQuorum(this.replicas.length) - 1);
      const hw = Math.max(this.baseOffset, ends[need - 1] ?? this.baseOffset);
      if (hw <= this.committedEnd) return;
      this.committedEnd = hw;
      let settled = 0;
      while (settled < this.waiting.length && this.waiting[settled]!.end <= hw) settled++;
      for (const w of this.waiting.splice(0, settled)) {
        this.ctx.scheduler.clearTimeout(w.timer);
        w.resolve();
      }
      this.onCommitted(hw);
    };
  };
}

/** walrus-node's join backoff (ms), as in joinCluster(). */
const joinBackoffMsMin = 200;
const joinBackoffMsMax = 5000;
/** Timeout of one join attempt, as in joinCluster(). */
const joinTimeoutMs = 15_000;
/** Preallocation step of simulated WAL segments (the smallest the WAL allows: memory). */
const segmentPreallocateBytes = 64 * 1024;
/** SnapshotTransfer.send, replaced to put defect 4 back. */
type SnapshotSend = (to: number, term: number, index: number, encode: () => Uint8Array) => void;

/** Why a node stopped for good (an operator would have to act). */
export type Refusal = { readonly reason: 'corrupt' | 'identity'; readonly message: string };

/** What the simulator needs to see of a running node. */
export interface Running {
  readonly process: SimProcess;
  readonly scheduler: SimScheduler;
  readonly io: SimFileIo;
  readonly state: MetadataState;
  storage: DurableRaftStorage | null;
  raft: RaftNode | null;
  core: RaftCore | null;
  topics: TopicService | null;
  wal: Wal | null;
  handler: RequestHandler | null;
  identity: RaftIdentity | null;
  /** True once the client listener is bound. */
  serving: boolean;
  readonly stopWork: AbortController;
}

export interface NodeEnv {
  readonly world: SimWorld;
  readonly net: SimNetwork;
  readonly checks: RaftChecks;
  readonly settings: NodeSettings;
  readonly logger: (nodeId: number) => Logger;
  /** A member to join through (null: none known yet). */
  readonly joinTarget: (self: number) => number | null;
  readonly newId: () => string;
  readonly prng: Prng;
  /** Sees the metadata after each applied command (null: after a snapshot was installed). */
  readonly onApplied: (state: MetadataState, command: MetaCommand | null) => void;
  /** Sees each node's WAL writes and seals (the replication checks), when set. */
  readonly walObserver: () => WalObserver | null;
}

export class SimNode {
  readonly dir: string;
  running: Running | null = null;
  incarnations = 0;
  /** Set when the node refused to start for a reason only an operator can fix. */
  refused: Refusal | null = null;

  constructor(
    readonly id: number,
    readonly disk: SimDisk,
    /** False: bootstrap a cluster (walrus-node without --join); an operator restarting a wiped node sets it. */
    public joins: boolean,
    private readonly env: NodeEnv,
    readonly clockSkewMs: number,
  ) {
    this.dir = `/data/node_${id}`;
    disk.provision('/data');
  }

  /** Starts a new process; `started` resolves when it serves clients, rejects when it exits. */
  boot(): { process: SimProcess; started: Promise<void> } {
    const env = this.env;
    const process = new SimProcess(this.id, ++this.incarnations);
    const scheduler = new SimScheduler(env.world, process, this.clockSkewMs);
    const io = new SimFileIo(this.disk, process, scheduler);
    const running: Running = {
      process,
      scheduler,
      io,
      state: new MetadataState(),
      storage: null,
      raft: null,
      core: null,
      topics: null,
      wal: null,
      handler: null,
      identity: null,
      serving: false,
      stopWork: new AbortController(),
    };
    this.running = running;
    return { process, started: this.main(running) };
  }

  private async main(r: Running): Promise<void> {
    const env = this.env;
    const s = env.settings;
    const logger = env.logger(this.id);
    const { io, scheduler, state } = r;
    const userDataDir = path.join(this.dir, 'user_data');
    const raftMetaDir = path.join(this.dir, 'raft_meta');
    mkdirDurably(io, userDataDir);
    mkdirDurably(io, raftMetaDir);

    let disk: RaftDiskStorage;
    let identity: RaftIdentity;
    try {
      disk = RaftDiskStorage.open(
        raftMetaDir,
        this.joins ? { voters: [], learners: [] } : { voters: [this.id], learners: [] },
        logger,
        io,
      );
      identity = RaftIdentity.open(
        raftMetaDir,
        { bootstrapCluster: disk.fresh && !this.joins, newId: env.newId },
        io,
      );
    } catch (error) {
      if ((error as { code?: string }).code === 'CORRUPT_RECORD')
        this.refused = { reason: 'corrupt', message: (error as Error).message };
      throw error;
    }
    r.identity = identity;
    env.checks.onHardState(this.id, disk.hardState());
    const wal = await Wal.open({
      rootDir: userDataDir,
      fsyncPolicy: { kind: 'always' },
      segmentPreallocateBytes,
      // Group commits overlap whenever two can (the default waits for 8 KiB, which few runs reach).
      groupCommitOverlapBytesMin: 1,
      nowMs: () => scheduler.nowMs(),
      logger,
      fileIo: io,
      scheduler,
    });
    r.wal = wal;
    const observer = env.walObserver();
    if (observer !== null) observeWal(wal, this.id, observer);
    const guard = new PeerIdentityGuard({
      nodeId: this.id,
      identity,
      state,
      logger,
      nowMs: () => scheduler.nowMs(),
    });
    const peers = new SimPeers(env.net, this.id, state);
    let topics: TopicService | null = null;
    let controller: Controller | null = null;
    const storage = env.checks.storage(this.id, disk, () => r.core);
    r.storage = storage;
    const raft = new RaftNode({
      nodeId: this.id,
      storage,
      peers,
      codec: env.checks.codec(
        { encode: encodeRaftMessage, decode: decodeRaftMessage },
        () => r.core,
        storage,
      ),
      state,
      tickMs: s.tickMs,
      electionTick: s.electionTick,
      heartbeatTick: 1,
      seed: 1 + env.prng.nextInt(2 ** 31 - 1),
      logger,
      onApply: (index, command) => {
        env.checks.onApply(this.id, storage, index);
        env.onApplied(state, command);
        topics?.onApply(command);
      },
      onRestore: () => {
        env.onApplied(state, null);
        if (s.bugs.skipReconcileOnSnapshot) return;
        void topics?.reconciler.reconcile().catch((error: unknown) => {
          logger.error({ err: String(error) }, 'could not reconcile the data with an installed snapshot');
        });
      },
      prepareProposal: (command) => controller?.prepareProposal(command) ?? command,
      localClusterId: () => identity.clusterId,
      scheduler,
      compactEntryCount: s.compactEntryCount,
    });
    if (s.bugs.snapshotAsOneMessage) {
      // The driver before chunked transfers: the whole MsgSnap as one peer message (Raft retries it
      // after snapshotTimeoutTick).
      const snapshots = (raft as unknown as { snapshots: { send: SnapshotSend } }).snapshots;
      snapshots.send = (to, _term, _index, encode) => peers.send(to, encode());
    }
    r.raft = raft;
    r.core = (raft as unknown as { core: RaftCore }).core;
    const cluster = raftClusterView(raft, peers);
    const meta = {
      state,
      propose: (command: MetaCommand) => raft.propose(command),
      // As walrus-node: ReadIndex, after waiting (bounded) for a leader when none is known.
      readBarrier: async () => {
        if (s.bugs.noReadBarrier) return;
        if (raft.leaderId === 0) await raft.catchUpWithLeader();
        await raft.readBarrier();
      },
    };
    topics = new TopicService({
      nodeId: this.id,
      wal,
      meta,
      cluster,
      segmentEntryCountMax: s.segmentEntryCountMax,
      retentionDefault: { retentionMs: null, retentionBytes: null },
      nowMs: () => scheduler.nowMs(),
      logger,
      scheduler,
    });
    r.topics = topics;
    if (s.bugs.quorumMinusOne) weakenQuorum(topics);
    if (s.bugs.keepTailPastSeal)
      wal.truncateSegment = async (topic, segmentId) => wal.segmentInfo(topic, segmentId)!;
    controller = new Controller({
      nodeId: this.id,
      state,
      isRaftLeader: () => raft.isLeader,
      voters: () => [...raft.status().voters],
      aliveVoters: () => raft.aliveVoters(),
      propose: (command) => raft.propose(command),
      repairSegment: (topic, segmentId, gone, target) =>
        topics!.repairSegment(topic, segmentId, gone, target),
      repairAfterMs: 30_000,
      delay: (ms) => new Promise((resolve) => scheduler.setTimeout(resolve, ms)),
      ensureCopy: (topic, segmentId, target) => topics!.ensureCopy(topic, segmentId, target),
      recoverSegment: (topic, segmentId, reason) => topics!.recoverSegment(topic, segmentId, reason),
      nowMs: () => scheduler.nowMs(),
      logger,
    });
    const topicService = topics;
    const leaderWork = controller;
    const monitor = new Monitor(
      [
        { name: 'topics', run: () => topicService.reconciler.maintain() },
        { name: 'controller', run: () => leaderWork.tick() },
      ],
      logger,
      scheduler,
    );
    const segmentWatch = new Monitor(
      [{ name: 'segments', run: async () => leaderWork.watchSegments() }],
      logger,
      scheduler,
    );
    let topicsRecovered = false;
    const handler = new RequestHandler({
      topics,
      controller,
      cluster,
      nodeId: this.id,
      clientAddr: `sim:${this.id}`,
      logger,
      ready: () => topicsRecovered,
      removed: () => raft.removedFromCluster,
      metricsJson: () => ({ nodeId: this.id }),
      // The operator's remove-node stands for walrus-cli, which goes to the leader's peer port.
      acceptPeerOnlyOpsFromClients: true,
    });
    r.handler = handler;

    // The peer listener.
    peers.endpoint = {
      nodeId: this.id,
      process: r.process,
      scheduler,
      onMessage: (from, payload) => raft.handleMessage(from, payload),
      onRequest: (from, payload) =>
        isReplicationPayload(payload)
          ? topics!.handleReplication(payload)
          : payload[0] === binaryMarker
            ? handler.executeForwarded(payload)
            : raft.handleRequest(from, payload),
      onSnapshotChunk: (from, payload) => raft.handleSnapshotChunk(from, payload),
      checkPeer: (peer) => guard.check(peer),
      self: () => guard.self(),
    };
    env.net.listen(peers.endpoint);

    const joinNeeded = this.joins && disk.lastIndex() === 0 && disk.snapshot().meta.index === 0;
    raft.start({ bootstrap: !this.joins });
    if (joinNeeded) {
      const reply = await this.join(r, peers, identity.incarnation);
      if (isIdentityId(reply.clusterId)) identity.adoptClusterId(reply.clusterId);
      peers.learn(reply.nodes);
    }
    await raft.waitLocalReplay();
    await topics.recover();
    topicsRecovered = true;
    void raft.ensureRegistered({
      nodeId: this.id,
      raftAddr: `sim:${this.id}`,
      clientAddr: `sim:${this.id}`,
      incarnation: identity.incarnation,
    });
    void ensureClusterId({ raft, identity, logger, signal: r.stopWork.signal, scheduler }).catch(
      (error: unknown) => {
        logger.error({ err: String(error) }, 'could not record the cluster id');
      },
    );
    r.serving = true;
    monitor.start(s.monitorCheckMs);
    segmentWatch.start(controllerLimits.segmentWatchIntervalMs);
  }

  /** walrus-node's joinCluster(): retries with capped backoff; an identity refusal stops the node. */
  private async join(r: Running, peers: SimPeers, incarnation: string): Promise<JoinReply> {
    const request: PeerRequest = {
      type: 'join',
      nodeId: this.id,
      raftAddr: `sim:${this.id}`,
      clientAddr: `sim:${this.id}`,
      incarnation,
    };
    const payload = Buffer.from(JSON.stringify(request));
    let backoffMs = joinBackoffMsMin;
    for (;;) {
      const target = this.env.joinTarget(this.id);
      if (target !== null) {
        peers.knowJoinTarget(target);
        try {
          const reply = await peers.request(target, payload, joinTimeoutMs);
          return JSON.parse(reply.toString('utf8')) as JoinReply;
        } catch (error) {
          const code = (error as { code?: string }).code;
          if (code === ErrorCode.IDENTITY_MISMATCH || code === ErrorCode.UNAUTHENTICATED) {
            this.refused = { reason: 'identity', message: (error as Error).message };
            throw error;
          }
        }
      }
      await sleep(r.scheduler, backoffMs);
      backoffMs = Math.min(backoffMs * 2, joinBackoffMsMax);
    }
  }

  /** The process dies (kill -9, or an exit); its page cache survives unless `powerLoss`. */
  kill(powerLoss: boolean): void {
    const r = this.running;
    if (r === null) return;
    this.running = null;
    r.process.alive = false;
    r.stopWork.abort();
    this.env.net.down(r.process);
    if (powerLoss) this.disk.crash();
  }
}
