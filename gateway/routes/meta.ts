/** Meta routes: Prometheus text at /metrics, the OpenAPI document and the human docs page. */
import type { Hono } from 'hono';
import { renderDocsPage } from '../docs-page.js';
import type { GatewayEnv, RouteDeps } from './deps.js';

export function metaRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  const docsHtml = renderDocsPage(deps.specText);
  app.get('/metrics', async (c) => {
    const text = await deps.metrics.registry.metrics();
    return c.body(text, 200, { 'content-type': deps.metrics.registry.contentType });
  });
  app.get('/openapi.yaml', (c) =>
    c.body(deps.specText, 200, { 'content-type': 'application/yaml; charset=utf-8' }),
  );
  app.get('/docs', (c) => c.html(docsHtml));
}
