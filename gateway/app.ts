/**
 * createApp(deps): the Hono gateway without listen(), testable in-process with `app.request()`.
 * Middleware order: request metrics → in-flight bound, security headers, CORS and auth →
 * routes (bodies are read through body.ts, which enforces the size limit); one onError (middleware/problem.ts) formats every error as problem+json.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Hono } from 'hono';
import { matchedRoutes } from 'hono/route';
import type { CounterChild, HistogramChild } from '../node/fast-metrics.js';
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import { AppendCoalescer } from './append-coalescer.js';
import { requestsInFlightMax } from './limits.js';
import { GatewayMetrics, requestSeriesCountMax } from './metrics.js';
import { type AccessLogLine, accessLog } from './middleware/access-log.js';
import { Authenticator, type TokenGrant } from './middleware/auth.js';
import { applyCors, type CorsOrigins } from './middleware/cors.js';
import { makeErrorHandler, problemOf, problemResponse } from './middleware/problem.js';
import { dsRoutePrefix } from './ds/path-map.js';
import { dsRoutes } from './ds/routes.js';
import { clusterRoutes } from './routes/cluster.js';
import { consumerRoutes } from './routes/consumers.js';
import type { GatewayContext, GatewayEnv, RouteDeps } from './routes/deps.js';
import { metaRoutes } from './routes/meta.js';
import { recordRoutes } from './routes/records.js';
import { tailRoutes } from './routes/tail.js';
import { topicRoutes } from './routes/topics.js';
import { type MemberClient, MemberMetrics } from './member-metrics.js';
import { TailHub, type TailHubOptions } from './sse/tail-hub.js';
import { uiPaths, uiRoutes } from './ui/routes.js';
import type { Upstream } from './upstream.js';
import { requestHeader, setResponseHeader } from './response-headers.js';
import { guardUpstream } from './upstream-guard.js';

export type GatewayLog = (level: 'info' | 'warn' | 'error', message: string, fields?: object) => void;

export interface GatewayDeps {
  /** The cluster: node/client's WalrusClient (adapted) or any implementation of the messages.ts contract. */
  readonly upstream: Upstream;
  /** Node client addresses, shown at /v1/cluster. */
  readonly nodes?: readonly string[];
  /** Bearer tokens; none = open gateway. */
  readonly tokens?: readonly TokenGrant[];
  /** Instead of `tokens`: an Authenticator the caller keeps, to replace its tokens on SIGHUP. */
  readonly auth?: Authenticator;
  /** CORS: null (default) = off, '*' or a list of origins. */
  readonly corsOrigins?: CorsOrigins;
  readonly metrics?: GatewayMetrics;
  readonly log?: GatewayLog;
  /** The OpenAPI text served at /openapi.yaml; read from the repository root by default. */
  readonly specText?: string;
  readonly sse?: TailHubOptions;
  /** Requests served at once before new ones are refused with BUSY (429) (default requestsInFlightMax). */
  readonly requestsInFlightMax?: number;
  /** The access log (middleware/access-log.ts): the fraction of requests logged (0 = off, the default). */
  readonly accessLog?: { readonly sampleRate: number; readonly write: (line: AccessLogLine) => void };
  /**
   * A client of one node at its client address (no routing, no retries), for /v1/cluster to ask
   * every member its own METRICS (member-metrics.ts). Absent: /v1/cluster shows no `members`.
   */
  readonly connectMember?: (clientAddress: string) => MemberClient;
}

export interface Gateway {
  readonly app: Hono<GatewayEnv>;
  readonly hub: TailHub;
  readonly metrics: GatewayMetrics;
  /** Closes every SSE tail with a resumable event, stops the heartbeat timer and the member clients. */
  close(): void;
}

/** Knows the repository layout: openapi.yaml sits at the root, above gateway/ and dist/gateway/. */
export function readSpecText(): string {
  for (const up of ['..', '../..']) {
    const file = path.resolve(import.meta.dirname, up, 'openapi.yaml');
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
  }
  throw new Error('openapi.yaml not found next to the gateway');
}

/** Paths and the methods they serve, for 405 answers. */
const routeMethods: Record<string, string> = {
  '/v1/health': 'GET',
  '/v1/ready': 'GET',
  '/v1/cluster': 'GET',
  '/v1/cluster/metrics': 'GET',
  '/v1/topics': 'GET, POST',
  '/v1/topics/:topic': 'GET, PATCH, DELETE',
  '/v1/topics/:topic/records': 'GET, POST',
  '/v1/topics/:topic/consumers': 'GET',
  '/v1/topics/:topic/consumers/:consumer': 'GET, DELETE',
  '/v1/topics/:topic/consumers/:consumer/read': 'POST',
  '/v1/topics/:topic/consumers/:consumer/commit': 'POST',
  '/v1/tail': 'GET',
  '/metrics': 'GET',
  '/openapi.yaml': 'GET',
  '/docs': 'GET',
  '/ui': 'GET',
  '/ui/console.js': 'GET',
  '/ui/console.css': 'GET',
};

/** Request methods the metrics label by name; any other is labelled `other`. */
const httpMethods: ReadonlySet<string> = new Set([
  'GET',
  'HEAD',
  'POST',
  'PUT',
  'PATCH',
  'DELETE',
  'OPTIONS',
]);

const publicPaths = new Set<string>([
  '/v1/health',
  '/v1/ready',
  '/metrics',
  '/openapi.yaml',
  '/docs',
  ...uiPaths,
]);

export function createApp(deps: GatewayDeps): Gateway {
  const metrics = deps.metrics ?? new GatewayMetrics();
  const log: GatewayLog = deps.log ?? (() => {});
  const upstream = guardUpstream(deps.upstream, metrics);
  const hub = new TailHub(upstream, metrics, (message, fields) => log('warn', message, fields), deps.sse);
  const auth = deps.auth ?? new Authenticator(deps.tokens ?? []);
  const routeDeps: RouteDeps = {
    upstream,
    appends: new AppendCoalescer(upstream, metrics),
    hub,
    metrics,
    auth,
    nodes: deps.nodes ?? [],
    corsOrigins: deps.corsOrigins ?? null,
    specText: deps.specText ?? readSpecText(),
    members: deps.connectMember === undefined ? null : new MemberMetrics(deps.connectMember),
  };

  const app = new Hono<GatewayEnv>();
  if (deps.accessLog !== undefined && deps.accessLog.sampleRate > 0)
    app.use('*', accessLog(deps.accessLog.sampleRate, deps.accessLog.write));
  const onError = makeErrorHandler((error) =>
    log('error', 'unhandled error', { error: String(error), stack: (error as Error)?.stack }),
  );
  app.onError(onError);
  app.notFound((c) =>
    problemResponse(problemOf(ErrorCode.NOT_FOUND, `no route for ${c.req.method} ${c.req.path}`, c.req.path)),
  );

  // The request metrics' children for each (method, route, status), looked up once and kept.
  // Methods outside the HTTP set are folded into one value, so the tuples stay few; should they
  // still reach the bound, the rest are counted under route "other" (never a throw mid-request).
  const metricChildren = new Map<string, { requests: CounterChild; duration: HistogramChild }>();
  const metricChildrenMax = requestSeriesCountMax - 1;
  const overflow = {
    requests: metrics.httpRequests.child('other', 'other', 'other'),
    duration: metrics.httpDurationSeconds.child('other', 'other'),
  };
  const recordRequest = (c: GatewayContext, startedAt: number): void => {
    const routes = matchedRoutes(c);
    const last = routes[routes.length - 1];
    const route = last !== undefined && last.path !== '*' && last.path !== '/*' ? last.path : 'unmatched';
    const method = httpMethods.has(c.req.method) ? c.req.method : 'other';
    const status = c.res.status;
    const key = `${method} ${route} ${status}`;
    let child = metricChildren.get(key);
    if (child === undefined) {
      child =
        metricChildren.size < metricChildrenMax
          ? {
              requests: metrics.httpRequests.child(method, route, String(status)),
              duration: metrics.httpDurationSeconds.child(method, route),
            }
          : overflow;
      if (child !== overflow) metricChildren.set(key, child);
    }
    child.requests.inc();
    child.duration.observe((performance.now() - startedAt) / 1000);
  };

  // One middleware for what every request needs (metrics, the in-flight bound, security headers,
  // CORS, auth) rather than one each: every Hono middleware layer is an async call and a promise
  // per request on the gateway's hottest path. Its own errors are answered here, through the same
  // onError, so that the metrics see them too; the routes' errors reach onError inside next().
  let inFlight = 0;
  const inFlightMax = deps.requestsInFlightMax ?? requestsInFlightMax;
  app.use('*', async (c, next) => {
    const startedAt = performance.now();
    if (inFlight >= inFlightMax) {
      c.res = onError(new WalrusError(ErrorCode.BUSY, 'the gateway is at its request limit'), c);
    } else {
      inFlight++;
      try {
        // On the Node response before the handler runs (response-headers.ts): it reaches every
        // answer, errors and SSE tails included, without cloning a finished Response.
        setResponseHeader(c, 'x-content-type-options', 'nosniff');
        // DS paths answer their own preflights, with the DS headers (gateway/ds/cors.ts).
        const requestPath = c.req.path;
        const preflight = requestPath.startsWith(dsRoutePrefix)
          ? undefined
          : applyCors(c, routeDeps.corsOrigins);
        if (preflight !== undefined) c.res = preflight;
        else {
          c.set(
            'principal',
            auth.open || publicPaths.has(requestPath) || requestPath.startsWith('/docs/assets/')
              ? auth.anonymous()
              : auth.authenticate(requestHeader(c, 'authorization'), c.req.query('access_token')),
          );
          await next();
        }
      } catch (error) {
        c.res = onError(error, c);
      } finally {
        inFlight--;
      }
    }
    recordRequest(c, startedAt);
  });
  clusterRoutes(app, routeDeps);
  topicRoutes(app, routeDeps);
  recordRoutes(app, routeDeps);
  consumerRoutes(app, routeDeps);
  tailRoutes(app, routeDeps);
  metaRoutes(app, routeDeps);
  uiRoutes(app);
  dsRoutes(app, routeDeps);
  for (const [routePath, allow] of Object.entries(routeMethods)) {
    app.all(routePath, (c) =>
      problemResponse(
        problemOf(
          ErrorCode.METHOD_NOT_ALLOWED,
          `${c.req.method} is not allowed on ${c.req.path}; use ${allow}`,
          c.req.path,
        ),
        { allow },
      ),
    );
  }

  return {
    app,
    hub,
    metrics,
    close: () => {
      hub.close();
      void routeDeps.members?.close();
    },
  };
}
