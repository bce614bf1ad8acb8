/**
 * The gateway's HTTP(S) server around the Hono app: @hono/node-server with the slow-client
 * timeouts, the header size limit and the connection ceiling of limits.ts, and problem+json
 * answers for what node:http itself refuses (client-error.ts). walrus-gateway serves through this,
 * and so do the tests that speak raw HTTP to it.
 */
import type { Server } from 'node:http';
import https from 'node:https';
import { serve } from '@hono/node-server';
import { clientErrorHandler } from './client-error.js';
import {
  connectionCountMax,
  connectionsCheckIntervalMs,
  headerSizeMaxBytes,
  headersTimeoutMs,
  keepAliveTimeoutMs,
  requestTimeoutMs,
} from './limits.js';

export interface GatewayServerOptions {
  readonly fetch: Parameters<typeof serve>[0]['fetch'];
  readonly port: number;
  readonly host: string;
  readonly tls?: { readonly cert: string | Buffer; readonly key: string | Buffer } | null;
  /** Overrides of limits.ts (tests use short timeouts). */
  readonly headersTimeoutMs?: number;
  readonly requestTimeoutMs?: number;
  readonly connectionsCheckIntervalMs?: number;
}

/** Creates the server and starts listening (wait for its 'listening' event). */
export function serveGateway(options: GatewayServerOptions): Server {
  const limits = {
    headerSizeMaxBytes,
    headersTimeoutMs: options.headersTimeoutMs ?? headersTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs ?? requestTimeoutMs,
  };
  // Timeouts are checked every connectionsCheckIntervalMs (Node's default is 30 s, which would let
  // a slow client hold a connection three times longer than headersTimeoutMs says).
  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionsCheckingInterval: options.connectionsCheckIntervalMs ?? connectionsCheckIntervalMs,
    maxHeaderSize: headerSizeMaxBytes,
  };
  const tls = options.tls ?? null;
  const server = serve({
    fetch: options.fetch,
    port: options.port,
    hostname: options.host,
    ...(tls === null
      ? { serverOptions }
      : {
          createServer: https.createServer,
          serverOptions: { ...serverOptions, cert: tls.cert, key: tls.key },
        }),
  }) as Server;
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = keepAliveTimeoutMs;
  server.maxConnections = connectionCountMax;
  server.on('clientError', clientErrorHandler(limits));
  return server;
}
