/**
 * What every route module gets: the guarded upstream, the SSE hub, metrics, auth and settings, and
 * the Hono environment type (Node bindings are optional so `app.request()` works in tests).
 */
import type { HttpBindings } from '@hono/node-server';
import type { Context } from 'hono';
import type { AppendCoalescer } from '../append-coalescer.js';
import type { GatewayMetrics } from '../metrics.js';
import type { Authenticator, Principal, Scope } from '../middleware/auth.js';
import { requireScope } from '../middleware/auth.js';
import type { CorsOrigins } from '../middleware/cors.js';
import { checkName } from '../params.js';
import type { TailHub } from '../sse/tail-hub.js';
import type { MemberMetrics } from '../member-metrics.js';
import type { Upstream } from '../upstream.js';

export type GatewayEnv = {
  Bindings: Partial<HttpBindings>;
  Variables: { principal: Principal };
};

export type GatewayContext = Context<GatewayEnv>;

export interface RouteDeps {
  readonly upstream: Upstream;
  /** Plain appends of one turn to one topic, joined into one upstream append. */
  readonly appends: AppendCoalescer;
  readonly hub: TailHub;
  readonly metrics: GatewayMetrics;
  readonly auth: Authenticator;
  readonly nodes: readonly string[];
  readonly corsOrigins: CorsOrigins;
  readonly specText: string;
  /** Each member's own METRICS for /v1/cluster; null when the gateway cannot dial members. */
  readonly members: MemberMetrics | null;
}

/** The topic path parameter, checked, after checking the caller may use it with `scope`. */
export function topicFor(c: GatewayContext, scope: Scope): string {
  const topic = checkName('topic', c.req.param('topic') ?? '');
  requireScope(c.get('principal'), scope, topic);
  return topic;
}
