/** Cluster routes: liveness, readiness (a ping reached a node), the nodes and the seed METRICS JSON. */
import type { Hono } from 'hono';
import { requireScope } from '../middleware/auth.js';
import type { GatewayEnv, RouteDeps } from './deps.js';

export function clusterRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/health', (c) => c.json({ status: 'ok' }));

  app.get('/v1/ready', async (c) => {
    const reply = await deps.upstream.request({ op: 'ping' }, { timeoutMs: 2_000 });
    return c.json({ ready: true, nodeId: reply.nodeId });
  });

  app.get('/v1/cluster', async (c) => {
    requireScope(c.get('principal'), 'read');
    const reply = await deps.upstream.request({ op: 'metrics' });
    return c.json({ nodes: deps.nodes.map((address) => ({ address })), metrics: reply.metrics });
  });

  app.get('/v1/cluster/metrics', async (c) => {
    requireScope(c.get('principal'), 'read');
    const reply = await deps.upstream.request({ op: 'metrics' });
    return c.json(reply.metrics as object);
  });
}
