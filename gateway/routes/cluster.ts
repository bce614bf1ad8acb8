/**
 * Cluster routes: liveness, readiness (a node answers, and no topic is unable to take writes: a
 * segment leader or a quorum of its replicas unreachable, as the answering node sees it), the
 * nodes and the seed METRICS JSON, and every member's own view (member-metrics.ts).
 */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import { requireScope } from '../middleware/auth.js';
import { checkQuery } from '../params.js';
import type { GatewayEnv, RouteDeps } from './deps.js';

export function clusterRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/health', (c) => {
    checkQuery(c.req.url);
    return c.json({ status: 'ok' });
  });

  app.get('/v1/ready', async (c) => {
    checkQuery(c.req.url);
    const reply = await deps.upstream.request({ op: 'ping' }, { timeoutMs: 2_000 });
    const { metrics } = await deps.upstream.request({ op: 'metrics' }, { timeoutMs: 2_000 });
    const unwritable = (metrics as { storage?: { topics_unwritable?: unknown } }).storage?.topics_unwritable;
    if (typeof unwritable === 'number' && unwritable > 0) {
      throw new WalrusError(
        ErrorCode.UNAVAILABLE,
        `${unwritable} topic(s) cannot take writes now (a segment leader or a quorum of its replicas is unreachable; a failover is under way or a majority of copies is down)`,
      );
    }
    return c.json({ ready: true, nodeId: reply.nodeId });
  });

  app.get('/v1/cluster', async (c) => {
    checkQuery(c.req.url);
    requireScope(c.get('principal'), 'read');
    const reply = await deps.upstream.request({ op: 'metrics' });
    const metrics = reply.metrics as Record<string, unknown>;
    const nodes = deps.nodes.map((address) => ({ address }));
    if (deps.members === null) return c.json({ nodes, metrics });
    return c.json({ nodes, members: await deps.members.members(metrics), metrics });
  });

  app.get('/v1/cluster/metrics', async (c) => {
    checkQuery(c.req.url);
    requireScope(c.get('principal'), 'read');
    const reply = await deps.upstream.request({ op: 'metrics' });
    return c.json(reply.metrics as object);
  });
}
