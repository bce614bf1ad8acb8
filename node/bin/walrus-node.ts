#!/usr/bin/env node
/**
 * walrus-node: the storage node. Wiring only: parse flags and env, open the metadata log and the
 * WAL, recover, bind the client port, start the monitor loop, stop cleanly on SIGTERM/SIGINT.
 * This is the one place that picks real files, sockets and the clock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Broker, soloClusterView } from '../cluster/broker.js';
import { MetaLog } from '../cluster/meta-log.js';
import { RequestHandler } from '../cluster/request-handler.js';
import { metricsJson, singleNodeStatus } from '../cluster/metrics-json.js';
import { ConfigError, type NodeConfig, nodeUsage, parseNodeConfig } from '../config/node-config.js';
import { FrameServer } from '../transport/frame-server.js';
import { Wal, parseFsyncPolicy } from '../wal/index.js';
import { protocolLimits } from '../protocol/limits.js';
import { createLogger } from './logger.js';

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

async function main(): Promise<void> {
  const config = readConfig();
  const logger = createLogger({ nodeId: config.nodeId, level: config.logLevel, file: config.logFile });
  logger.info(
    { config: { ...config, clusterSecret: config.clusterSecret ? '***' : null } },
    `Node ${config.nodeId} booting`,
  );
  if (process.env['WALRUS_DISABLE_IO_URING'] !== undefined) {
    logger.info({}, 'WALRUS_DISABLE_IO_URING is accepted for compatibility; Walrus-TS does not use io_uring');
  }
  if (config.join !== null) {
    logger.error({ join: config.join }, 'Failed to join cluster: this build runs single-node clusters only');
    process.stderr.write(
      'walrus-node: --join needs the consensus layer, which this build does not have yet\n',
    );
    process.exit(2);
  }

  const nodeDir = path.join(config.dataDir, `node_${config.nodeId}`);
  const userDataDir = path.join(nodeDir, 'user_data');
  const raftMetaDir = path.join(nodeDir, 'raft_meta');
  fs.mkdirSync(userDataDir, { recursive: true });

  const meta = MetaLog.open(raftMetaDir, (info) =>
    logger.warn(info, 'Truncated a torn tail of the metadata log'),
  );
  const wal = await Wal.open({
    rootDir: userDataDir,
    fsyncPolicy: parseFsyncPolicy(config.fsync),
    recordSizeMaxBytes: config.recordSizeMaxBytes,
    logger,
  });
  const broker = new Broker({
    nodeId: config.nodeId,
    wal,
    meta,
    cluster: soloClusterView(config.nodeId),
    segmentEntryCountMax: config.segmentEntryCountMax,
    retentionDefault: {
      retentionMs: config.retentionMsDefault,
      retentionBytes: config.retentionBytesDefault,
    },
    nowMs: Date.now,
    logger,
  });
  meta.onApply = (command) => broker.onApply(command);
  await broker.recover();

  const clientAddr = `${config.clientHost}:${config.clientPort}`;
  const handler = new RequestHandler({
    broker,
    cluster: soloClusterView(config.nodeId),
    nodeId: config.nodeId,
    clientAddr,
    logger,
    metricsJson: () =>
      metricsJson(
        config.nodeId,
        singleNodeStatus(config.nodeId, broker.metadataAppliedIndex()),
        broker.storageStats(),
      ),
  });
  const server = new FrameServer({
    host: config.clientHost,
    port: config.clientPort,
    frameSizeMaxBytes: protocolLimits.frameSizeMaxBytes,
    connectionCountMax: config.connectionCountMax,
    idleTimeoutMs: config.idleTimeoutMs,
    inFlightMaxPerConnection: 1024,
    writeBufferMaxBytes: 64 * 1024 * 1024,
    onFrame: (conn, payload) => handler.onFrame(conn, payload),
    onClose: (conn) => handler.onClose(conn),
    logger,
  });
  const bound = await server.listen();
  logger.info({ host: bound.host, port: bound.port }, 'Client listener bound');
  broker.startMonitor(config.monitorCheckMs);

  let stopping = false;
  const stop = async (signal: string): Promise<void> => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'Shutting down');
    await server.close();
    await broker.close();
    await wal.close();
    meta.close();
    logger.info({}, 'Stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((error: unknown) => {
  process.stderr.write(
    `walrus-node: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
