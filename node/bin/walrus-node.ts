#!/usr/bin/env node
/**
 * walrus-node: the storage node. Wiring only: parse flags and env, open the Raft storage, the node
 * identity and the WAL, start Raft (a node without --join bootstraps a one-voter cluster and makes
 * the cluster id; others --join a member and are added as learners, then promoted; a join refused
 * for its identity exits 1 with the operator's instructions), replay the metadata, reconcile the
 * WAL, start the monitor loop. Both ports are bound BEFORE the node asks to join, so a node that
 * cannot serve (EADDRINUSE) exits 1 without having become a member; client requests are answered
 * UNAVAILABLE until the topics are recovered. SIGTERM/SIGINT are graceful
 * (server/shutdown-hand-off.ts): hand the Raft and segment leaderships over, stop taking client
 * requests and drain those in flight (bounded), then stop and exit 0. SIGHUP re-reads the TLS
 * files and the client tokens file without a restart (bin/node-security.ts).
 * This is the one place that picks real files, sockets and the clock.
 */
import { randomInt } from 'node:crypto';
import path from 'node:path';
import { PeerIdentityGuard, ensureClusterId } from '../metadata/cluster-identity.js';
import { isIdentityId } from '../metadata/identity-id.js';
import { type MetaCommand, MetadataState } from '../metadata/metadata-state.js';
import { RaftDiskStorage } from '../metadata/raft-disk-storage.js';
import { decodeRaftMessage, encodeRaftMessage } from '../metadata/raft-codec.js';
import { RaftIdentity } from '../metadata/raft-identity.js';
import {
  type JoinReply,
  type PeerRequest,
  RaftNode,
  type RaftStatusForMetrics,
} from '../metadata/raft-node.js';
import { Controller, controllerLimits } from '../controller/controller.js';
import { Monitor } from '../controller/monitor.js';
import { metricsJson } from '../server/metrics-json.js';
import { RequestHandler } from '../server/request-handler.js';
import { handOffForShutdown, shutdownLimits } from '../server/shutdown-hand-off.js';
import { TopicService } from '../topics/topic-service.js';
import { ConfigError, type NodeConfig, nodeUsage, parseNodeConfig } from '../config/node-config.js';
import { ErrorCode } from '../protocol/error-codes.js';
import { binaryMarker } from '../protocol/frame.js';
import { isReplicationPayload } from '../protocol/replication-codec.js';
import { protocolLimits } from '../protocol/limits.js';
import { FrameServer, frameServerDefaults } from '../transport/frame-server.js';
import { PeerServer } from '../transport/peer-server.js';
import type { PeerIdentityPolicy } from '../transport/peer-auth.js';
import { peerRequestOnce } from '../transport/peer-link.js';
import { mkdirDurably, realFileIo } from '../storage-io/index.js';
import { Wal, parseFsyncPolicy } from '../wal/index.js';
import { type Logger, createLogger } from '../log.js';
import { loadNodeSecurity, type NodeSecurity, reloadNodeSecurity, securityJson } from './node-security.js';
import { PeerDirectory, raftClusterView } from './peers.js';
import { AdminServer, type Readiness } from '../admin/admin-server.js';
import { NodeMetrics } from '../metrics/node-metrics.js';

function readSecurity(config: NodeConfig): NodeSecurity {
  try {
    return loadNodeSecurity(config);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`walrus-node: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/** Exits 1 with `message` (a port could not be bound, ...), before this node joined anything. */
function failStart(logger: Logger, message: string, fields: Record<string, unknown>): never {
  logger.error(fields, message);
  process.stderr.write(`walrus-node: ${message}\n`);
  process.exit(1);
}

function readConfig(): NodeConfig {
  try {
    const config = parseNodeConfig(process.argv.slice(2), process.env);
    if (config === 'help') {
      process.stdout.write(nodeUsage);
      process.exit(0);
    }
    return config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`walrus-node: ${error.message}\nRun 'walrus-node --help' for the flags.\n`);
      process.exit(2);
    }
    throw error;
  }
}

function envInt(name: string, fallback: number, min: number, max: number): number {
  const text = process.env[name];
  if (text === undefined || text === '') return fallback;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    process.stderr.write(`walrus-node: ${name} must be an integer in [${min}, ${max}], got '${text}'\n`);
    process.exit(2);
  }
  return value;
}

/**
 * Asks the --join target (any member: it forwards to the Raft leader) to add this node, retrying with
 * capped backoff. Exits 1 when the cluster refuses this node's secret or identity (a wiped node under
 * a member's id, or a node of another cluster): retrying cannot help, the operator must act.
 */
async function joinCluster(
  config: NodeConfig,
  clientAddr: string,
  raftAddr: string,
  identity: PeerIdentityPolicy,
  incarnation: string,
  logger: Logger,
  tls: NodeSecurity['peerClientTls'],
): Promise<JoinReply> {
  const request: PeerRequest = { type: 'join', nodeId: config.nodeId, raftAddr, clientAddr, incarnation };
  const payload = Buffer.from(JSON.stringify(request));
  let backoffMs = 200;
  for (let attempt = 1; ; attempt++) {
    try {
      const reply = await peerRequestOnce({
        addr: config.join!,
        selfNodeId: config.nodeId,
        clusterSecret: config.clusterSecret,
        identity,
        payload,
        timeoutMs: 15_000,
        ...(tls === undefined ? {} : { tls }),
      });
      logger.info({ join: config.join, attempt }, 'Joined cluster as a learner');
      return JSON.parse(reply.toString('utf8')) as JoinReply;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === ErrorCode.UNAUTHENTICATED) {
        logger.error({ join: config.join }, 'Failed to join cluster: the cluster secret was refused');
        process.stderr.write(`walrus-node: ${config.join} refused this node's cluster secret\n`);
        process.exit(1);
      }
      if (code === ErrorCode.IDENTITY_MISMATCH) {
        const message = `the cluster refused node ${config.nodeId} (IDENTITY_MISMATCH): ${(error as Error).message}`;
        logger.error({ join: config.join, code }, `Failed to join cluster: ${message}`);
        process.stderr.write(`walrus-node: ${message}\n`);
        process.exit(1);
      }
      logger.warn(
        { join: config.join, attempt, code, err: (error as Error).message },
        'Failed to join cluster; retrying',
      );
      await new Promise((r) => setTimeout(r, backoffMs));
      backoffMs = Math.min(backoffMs * 2, 5000);
    }
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  // Prometheus figures (node/metrics) exist only with --admin-port: without it no hot path pays.
  // Their sources are read at scrape time, once the admin port is bound below.
  const metrics: NodeMetrics | null =
    config.adminPort === null
      ? null
      : new NodeMetrics(
          {
            nodeId: config.nodeId,
            nodeDir: path.join(config.dataDir, `node_${config.nodeId}`),
            raft: (): RaftStatusForMetrics => raft.metricsStatus(Date.now()),
            aliveVoterCount: (): number => raft.aliveVoters().length,
            storage: () => topicService.storageStats(),
            topics: () => topics,
            connections: () =>
              server === undefined ? null : { count: server.connectionCount(), ...server.budgetStats() },
            ready: () => readiness().ready,
            security: () => security.figures(),
          },
          { topicSeriesCountMax: config.metricsTopicsMax },
        );
  const baseLogger = createLogger({ nodeId: config.nodeId, level: config.logLevel, file: config.logFile });
  const logger: Logger = metrics?.logLines.wrap(baseLogger) ?? baseLogger;
  const security = readSecurity(config);
  // Until the node serves, a stop signal just ends it (nothing is led or in flight yet); from then
  // on it is the graceful stop below.
  let stopGracefully: ((signal: string) => Promise<void>) | null = null;
  const onSignal = (signal: string): void => {
    if (stopGracefully !== null) {
      // A step of the stop that fails still ends the process, with the reason in the log.
      void stopGracefully(signal).catch((error: unknown) => {
        logger.error({ err: String(error) }, 'Shutdown failed');
        process.exit(1);
      });
      return;
    }
    logger.info({ signal }, 'Stopped during start-up');
    process.exit(0);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // SIGHUP re-reads the TLS files and the client tokens file: all replaced, or nothing (node-security.ts).
  process.on('SIGHUP', () => reloadNodeSecurity(security, config, logger));
  logger.info(
    { config: { ...config, clusterSecret: config.clusterSecret ? '***' : null } },
    `Node ${config.nodeId} booting`,
  );
  if (config.clusterSecret === null) {
    logger.warn(
      {},
      'NO CLUSTER SECRET: the raft port accepts any peer. Set --cluster-secret or WALRUS_CLUSTER_SECRET in production.',
    );
  }
  if (security.auth.required && security.auth.textProtocol) {
    logger.warn(
      {},
      'The Walrus text protocol is on (--text-protocol on) although client tokens are configured: it cannot authenticate, so anyone who reaches the client port may use it',
    );
  } else if (!security.auth.required) {
    logger.warn(
      {},
      'NO CLIENT TOKENS: the client port accepts any client. Set --client-tokens-file in production.',
    );
  }
  logger.info(
    {
      clientTls: security.clientTls !== undefined,
      peerMtls: security.peerTls?.material.requestCert === true,
    },
    security.clientTls === undefined
      ? 'TLS off: the client and raft ports are plain TCP'
      : 'TLS on the client and raft ports',
  );
  const tickMs = envInt('WALRUS_RAFT_TICK_MS', 50, 5, 10_000);
  const electionTick = envInt('WALRUS_RAFT_ELECTION_TICKS', 10, 3, 1000);

  const nodeDir = path.join(config.dataDir, `node_${config.nodeId}`);
  const userDataDir = path.join(nodeDir, 'user_data');
  const raftMetaDir = path.join(nodeDir, 'raft_meta');
  // Durably: a node directory whose entry a crash takes back would come back empty (a new node).
  mkdirDurably(realFileIo, userDataDir);
  mkdirDurably(realFileIo, raftMetaDir);

  let storage: RaftDiskStorage;
  let identity: RaftIdentity;
  try {
    storage = RaftDiskStorage.open(
      raftMetaDir,
      config.join === null ? { voters: [config.nodeId], learners: [] } : { voters: [], learners: [] },
      logger,
    );
    // Made with raft_meta/ (or at the first start of this version on an old one); only a node that
    // bootstraps a new cluster makes the cluster id, every other learns it.
    identity = RaftIdentity.open(raftMetaDir, { bootstrapCluster: storage.fresh && config.join === null });
  } catch (error) {
    logger.error(
      { err: (error as Error).message },
      'Raft state failed its checks; refusing to start as a voter',
    );
    process.stderr.write(`walrus-node: ${(error as Error).message}\n`);
    process.exit(1);
  }
  const wal = await Wal.open({
    rootDir: userDataDir,
    fsyncPolicy: parseFsyncPolicy(config.fsync),
    recordSizeMaxBytes: config.recordSizeMaxBytes,
    ...(config.diskReserveBytes === null ? {} : { diskReserveBytes: config.diskReserveBytes }),
    ...(metrics === null ? {} : metrics.walOptions(realFileIo)),
    logger,
  });

  const clientAddr = `${config.clientHost === '0.0.0.0' ? config.raftAdvertiseHost : config.clientHost}:${config.clientPort}`;
  const raftAddr = `${config.raftAdvertiseHost}:${config.raftPort}`;
  logger.info(
    { incarnation: identity.incarnation, clusterId: identity.clusterId, created: identity.created },
    identity.created && !storage.fresh
      ? 'Node identity created for a raft_meta/ written by an older version'
      : 'Node identity',
  );
  const state = new MetadataState();
  const guard = new PeerIdentityGuard({ nodeId: config.nodeId, identity, state, logger });
  const peers = new PeerDirectory(
    config.nodeId,
    state,
    config.clusterSecret,
    guard,
    logger,
    security.peerClientTls,
  );
  let topics: TopicService | null = null;
  let controller: Controller | null = null;
  const raft = new RaftNode({
    nodeId: config.nodeId,
    storage,
    peers,
    codec: { encode: encodeRaftMessage, decode: decodeRaftMessage },
    state,
    tickMs,
    electionTick,
    heartbeatTick: 1,
    seed: randomInt(1, 2 ** 31),
    logger,
    onApply: (_index, command) => {
      metrics?.onApplied(command);
      topics?.onApply(command);
    },
    onRestore: () => {
      void topics?.reconciler.reconcile().catch((error: unknown) => {
        logger.error({ err: String(error) }, 'could not reconcile the data with an installed snapshot');
      });
    },
    prepareProposal: (command) => controller?.prepareProposal(command) ?? command,
    localClusterId: () => identity.clusterId,
  });
  const cluster = raftClusterView(raft, peers);
  const meta = {
    state,
    propose: (command: MetaCommand) => raft.propose(command),
    // ReadIndex; a node that knows no leader yet (just started, an election running) first
    // waits, bounded, for one, so a read right after start-up is not refused for nothing.
    readBarrier: async () => {
      if (raft.leaderId === 0) await raft.catchUpWithLeader();
      await raft.readBarrier();
    },
  };
  topics = new TopicService({
    nodeId: config.nodeId,
    wal,
    meta,
    cluster,
    segmentEntryCountMax: config.segmentEntryCountMax,
    retentionDefault: {
      retentionMs: config.retentionMsDefault,
      retentionBytes: config.retentionBytesDefault,
    },
    nowMs: Date.now,
    logger,
  });
  controller = new Controller({
    nodeId: config.nodeId,
    state,
    isRaftLeader: () => raft.isLeader,
    voters: () => [...raft.status().voters],
    aliveVoters: () => raft.aliveVoters(),
    propose: (command) => raft.propose(command),
    repairSegment: (topic, segmentId, gone, target) =>
      topicService.repairSegment(topic, segmentId, gone, target),
    repairAfterMs: config.repairAfterMs,
    delay: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    ensureCopy: (topic, segmentId, target) => topicService.ensureCopy(topic, segmentId, target),
    recoverSegment: (topic, segmentId, reason) => topicService.recoverSegment(topic, segmentId, reason),
    nowMs: Date.now,
    logger,
  });
  const topicService = topics;
  const leaderWork = controller;
  const timed = <T extends { name: string; run(): Promise<void> }>(task: T): T =>
    metrics?.timed(task) ?? task;
  const monitor = new Monitor(
    [
      timed({ name: 'topics', run: () => topicService.reconciler.maintain() }),
      timed({ name: 'controller', run: () => leaderWork.tick() }),
      // Durable Streams past their TTL / Expires-At go (the Raft leader's sweep, bounded per round).
      timed({
        name: 'stream-expiry',
        run: async () => {
          if (raft.isLeader) await topicService.streams.expireStreams();
        },
      }),
    ],
    logger,
  );
  // Failover is checked far more often than the monitor's other work (controller.ts).
  const segmentWatch = new Monitor(
    [timed({ name: 'segments', run: async () => leaderWork.watchSegments() })],
    logger,
  );
  let topicsRecovered = false;
  // The client port's server, bound below once the topics are recovered (METRICS reads its figures).
  let server: FrameServer | undefined;
  let clientBound = false;
  const readiness = (): Readiness => {
    const reasons: string[] = [];
    if (!topicsRecovered) reasons.push('its topics are not recovered yet');
    if (!clientBound) reasons.push('its client port is not bound yet');
    if (raft.leaderId === 0) reasons.push('it knows no Raft leader');
    return { ready: reasons.length === 0, reasons };
  };
  const handler = new RequestHandler({
    topics,
    controller,
    cluster,
    nodeId: config.nodeId,
    clientAddr,
    logger,
    auth: security.auth,
    ready: () => topicsRecovered,
    removed: () => raft.removedFromCluster,
    requestObserver: metrics?.requests,
    metricsJson: () => {
      const nowMs = Date.now();
      const connections =
        server === undefined ? undefined : { count: server.connectionCount(), ...server.budgetStats() };
      return {
        ...metricsJson(
          config.nodeId,
          raft.metricsStatus(nowMs),
          topicService.storageStats(),
          nowMs,
          connections,
          state.leaving,
        ),
        security: securityJson(security.figures()),
      };
    },
  });

  const peerServer = new PeerServer({
    host: config.raftHost,
    port: config.raftPort,
    clusterSecret: config.clusterSecret,
    identity: guard,
    connectionCountMax: 256,
    frameSizeMaxBytes: protocolLimits.frameSizeMaxBytes,
    idleTimeoutMs: 10 * 60_000,
    onMessage: (from, payload) => raft.handleMessage(from, payload),
    onRequest: (from, payload) =>
      isReplicationPayload(payload)
        ? topicService.handleReplication(payload)
        : payload[0] === binaryMarker
          ? handler.executeForwarded(payload)
          : raft.handleRequest(from, payload),
    onSnapshotChunk: (from, payload) => raft.handleSnapshotChunk(from, payload),
    ...(security.peerTls === undefined ? {} : { tls: security.peerTls }),
    logger,
  });
  server = new FrameServer({
    host: config.clientHost,
    port: config.clientPort,
    frameSizeMaxBytes: protocolLimits.frameSizeMaxBytes,
    connectionCountMax: config.connectionCountMax,
    idleTimeoutMs: config.idleTimeoutMs,
    frameDeadlineMs: config.frameDeadlineMs,
    inFlightMaxPerConnection: config.inFlightMaxPerConnection,
    replyPendingMaxBytesPerConnection: config.replyPendingMaxBytesPerConnection,
    bufferedInputMaxBytes: config.bufferedInputMaxBytes,
    writeBufferMaxBytes: frameServerDefaults.writeBufferMaxBytes,
    onFrame: (conn, payload) => handler.onFrame(conn, payload),
    onRefused: (conn, head, error) => handler.onRefused(conn, head, error),
    onClose: (conn) => handler.onClose(conn),
    ...(security.clientTls === undefined ? {} : { tls: security.clientTls }),
    logger,
  });
  const clientServer = server;
  // Both ports are bound before this node asks to join: a node that cannot serve must not become
  // a member (it would stay one, unreachable, until removed by hand). Client requests are
  // answered UNAVAILABLE until the topics are recovered (`ready`).
  metrics?.network.assignPort(config.raftPort, 'raft');
  metrics?.network.assignPort(config.clientPort, 'client');
  const raftBound = await peerServer
    .listen()
    .catch((error: NodeJS.ErrnoException) =>
      failStart(
        logger,
        `cannot bind the raft port ${config.raftHost}:${config.raftPort}: ${error.code ?? error.message}`,
        { code: error.code },
      ),
    );
  logger.info({ host: raftBound.host, port: raftBound.port }, 'Raft listener bound');
  // Bound early, so that /health answers and /ready says why while the node joins and recovers.
  let admin: AdminServer | null = null;
  if (metrics !== null && config.adminPort !== null) {
    const nodeMetrics = metrics;
    admin = new AdminServer({
      host: config.adminHost,
      port: config.adminPort,
      nodeId: config.nodeId,
      scrape: async () => ({ text: await nodeMetrics.scrape(), contentType: nodeMetrics.contentType }),
      readiness,
    });
    const adminBound = await admin.listen();
    metrics.network.assignPort(adminBound.port, 'admin');
    logger.info({ host: adminBound.host, port: adminBound.port }, 'Admin listener bound');
  }
  const bound = await clientServer.listen().catch(async (error: NodeJS.ErrnoException) => {
    await peerServer.close();
    return failStart(
      logger,
      `cannot bind the client port ${config.clientHost}:${config.clientPort}: ${error.code ?? error.message}`,
      { code: error.code },
    );
  });
  clientBound = true;
  logger.info({ host: bound.host, port: bound.port }, 'Client listener bound');

  // A joiner joins until it has Raft state: on its first start, and again after a join that did not
  // complete (refused, or a crash in between). A node with Raft state ignores --join.
  const joinNeeded = config.join !== null && storage.lastIndex() === 0 && storage.snapshot().meta.index === 0;
  raft.start({ bootstrap: config.join === null });
  if (joinNeeded) {
    const reply = await joinCluster(
      config,
      clientAddr,
      raftAddr,
      guard,
      identity.incarnation,
      logger,
      security.peerClientTls,
    );
    if (isIdentityId(reply.clusterId)) identity.adoptClusterId(reply.clusterId);
    peers.learn(reply.nodes);
  }
  await raft.waitLocalReplay();
  await topics.recover();
  topicsRecovered = true;
  void raft.ensureRegistered({
    nodeId: config.nodeId,
    raftAddr,
    clientAddr,
    incarnation: identity.incarnation,
  });
  const identityWork = new AbortController();
  void ensureClusterId({ raft, identity, logger, signal: identityWork.signal }).catch((error: unknown) => {
    logger.error({ err: String(error) }, 'could not record the cluster id');
  });

  monitor.start(config.monitorCheckMs);
  segmentWatch.start(controllerLimits.segmentWatchIntervalMs);

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'Shutting down: handing leaderships over, then draining');
    const handedOff = await handOffForShutdown({
      nodeId: config.nodeId,
      cluster,
      topics: topicService,
      isRaftLeader: () => raft.isLeader,
      logger,
    });
    // No new connections or requests (answered UNAVAILABLE: the client moves on); those in flight finish.
    handler.drain();
    clientServer.stopAccepting();
    const drainUntilMs = Date.now() + shutdownLimits.drainMs;
    const busy = (): boolean =>
      clientServer.inFlightCount() > 0 ||
      Date.now() - clientServer.lastClientDataMs() < shutdownLimits.drainQuietMs;
    while (busy() && Date.now() < drainUntilMs)
      await new Promise((resolve) => setTimeout(resolve, shutdownLimits.drainPollMs));
    const abandoned = clientServer.inFlightCount();
    logger.info({ ...handedOff, abandoned }, 'Shutdown: drained');
    clientServer.endConnections();
    await clientServer.close();
    monitor.stop();
    segmentWatch.stop();
    // Raft stops before the topics close: closing waits for a rollover in flight, whose seal
    // proposal would otherwise wait out its 10 s timeout when the other voters are stopping too
    // (a node made Raft leader during a whole-cluster stop hung here until SIGKILL). Stopped, Raft
    // refuses it at once; its outcome is unknown, as after a crash, and recovery settles it.
    identityWork.abort();
    raft.stop();
    await topics.close();
    await peerServer.close();
    await peers.close();
    await wal.close();
    storage.close();
    await admin?.close();
    metrics?.close();
    logger.info({}, 'Stopped');
    process.exit(0);
  };
  stopGracefully = stop;
}

main().catch((error: unknown) => {
  process.stderr.write(
    `walrus-node: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
