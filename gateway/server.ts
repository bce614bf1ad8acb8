#!/usr/bin/env node
/**
 * `walrus-gateway`: parses flags, connects a WalrusClient to the nodes, serves the Hono app over
 * HTTP (or HTTPS with --tls-cert/--tls-key) through http-server.ts (slow-client timeouts, limits,
 * problem+json for what node:http refuses),
 * and shuts down gracefully on SIGTERM/SIGINT: stop accepting, close SSE tails with a resumable
 * event, let in-flight requests finish (bounded), close the node connections. SIGHUP re-reads the
 * tokens file, the TLS files and the nodes' CA file (reload.ts): one info line when all was replaced, one error line
 * with code INVALID_CONFIG when nothing was; both counted in /metrics, as are failed handshakes.
 *
 * Everything it says on stdout is a JSON line of the one log shape (node/log.ts, `component`
 * `gateway`), the access log (--access-log) included; only a bad command line is plain text, on
 * stderr, before it exits 2.
 */
import type tls from 'node:tls';
import { createLogger } from '../node/log.js';
import { ErrorCode } from '../node/protocol/error-codes.js';
import { WalrusClient } from '../node/client/index.js';
import { createApp } from './app.js';
import { memberMetricsLimits } from './member-metrics.js';
import { parseGatewayArgs } from './config.js';
import { serveGateway } from './http-server.js';
import { shutdownGraceMs } from './limits.js';
import { GatewayMetrics } from './metrics.js';
import { Authenticator } from './middleware/auth.js';
import { GatewayReloadError, NodeCredential, NodeTrust, reloadGateway } from './reload.js';

async function main(): Promise<void> {
  let config: ReturnType<typeof parseGatewayArgs>;
  try {
    config = parseGatewayArgs(process.argv.slice(2), process.env);
  } catch (error) {
    console.error((error as Error).message);
    process.exit(2);
  }
  const logger = createLogger({ component: 'gateway', level: config.logLevel });
  let nodeTrust: NodeTrust | null = null;
  try {
    nodeTrust = config.nodeAccess.tls === undefined ? null : new NodeTrust(config.nodeAccess.tls.ca);
  } catch (error) {
    console.error(`--node-tls-ca: ${(error as Error).message}`);
    process.exit(2);
  }
  // Node access for every client of the gateway: the token and TLS's CA, which a SIGHUP can
  // replace when they came from files.
  const token = config.nodeAccess.token;
  const nodeCredential =
    token === undefined || config.files.nodeToken === null ? null : new NodeCredential(token);
  const nodeAccess = {
    ...(token === undefined ? {} : { token: nodeCredential?.read ?? token }),
    ...(nodeTrust === null ? {} : { tls: nodeTrust.options }),
  };
  const client = new WalrusClient({ nodes: config.nodes, ...nodeAccess });
  const auth = new Authenticator(config.tokens);
  const metrics = new GatewayMetrics({ defaultMetrics: true });
  const gateway = createApp({
    upstream: client,
    nodes: config.nodes,
    connectMember: (address) =>
      new WalrusClient({
        nodes: [address],
        ...nodeAccess,
        retryCountMax: 0,
        requestTimeoutMs: memberMetricsLimits.timeoutMs,
      }),
    auth,
    corsOrigins: config.corsOrigins,
    metrics,
    log: (level, message, fields) => logger[level](fields ?? {}, message),
    accessLog: {
      sampleRate: config.accessLogSampleRate,
      write: (line) => logger.info(line, 'http request'),
    },
  });
  if (config.tokens.length === 0) {
    logger.warn(
      {},
      'NO TOKENS CONFIGURED: this gateway is OPEN; anyone who reaches it may read, write and delete topics',
    );
  }

  const server = serveGateway({
    fetch: gateway.app.fetch,
    port: config.port,
    host: config.host,
    tls: config.tls,
  });
  server.on('listening', () => {
    const address = server.address();
    const port = typeof address === 'object' && address !== null ? address.port : config.port;
    const scheme = config.tls === null ? 'http' : 'https';
    logger.info(
      {
        url: `${scheme}://${config.host}:${port}`,
        port,
        nodes: config.nodes,
        accessLogSampleRate: config.accessLogSampleRate,
      },
      'Gateway listening',
    );
  });
  const httpsServer = config.tls === null ? null : (server as unknown as tls.Server);
  // Counted, never logged one by one (a scanner must not flood the log); the socket is closed.
  httpsServer?.on('tlsClientError', (_error, socket) => {
    metrics.tlsHandshakeFailures.inc({ listener: 'https' });
    socket.destroy();
  });
  process.on('SIGHUP', () => {
    try {
      const reloaded = reloadGateway({
        files: config.files,
        auth,
        server: httpsServer,
        nodeTrust,
        nodeCredential,
      });
      metrics.configReloads.inc({ result: 'success' });
      metrics.configLastReloadSuccessful.set(1);
      logger.info(reloaded, 'Reloaded tokens and TLS material');
    } catch (error) {
      if (!(error instanceof GatewayReloadError)) throw error;
      metrics.configReloads.inc({ result: 'failure' });
      metrics.configLastReloadSuccessful.set(0);
      logger.error(
        { code: ErrorCode.INVALID_CONFIG, err: error.message },
        'Reload failed: kept the previous tokens and TLS material',
      );
    }
  });
  server.on('error', (error) => {
    logger.error({ error: String(error) }, 'server error');
    process.exit(1);
  });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'Gateway draining');
    server.close();
    gateway.close();
    server.closeIdleConnections();
    const force = setTimeout(() => server.closeAllConnections(), shutdownGraceMs);
    force.unref();
    server.once('close', () => {
      void client.close().finally(() => {
        logger.info({}, 'Gateway stopped');
        process.exit(0);
      });
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

void main();
