/** Meta routes: Prometheus text at /metrics, the OpenAPI document and the API reference at /docs. */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import { loadDocsAssets, renderDocsPage } from '../docs-page.js';
import type { GatewayEnv, RouteDeps } from './deps.js';

export function metaRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  const docsHtml = renderDocsPage(deps.specText);
  const assets = loadDocsAssets();
  app.get('/metrics', async (c) => {
    const text = await deps.metrics.registry.metrics();
    return c.body(text, 200, { 'content-type': deps.metrics.registry.contentType });
  });
  app.get('/openapi.yaml', (c) =>
    c.body(deps.specText, 200, { 'content-type': 'application/yaml; charset=utf-8' }),
  );
  app.get('/docs', (c) => c.html(docsHtml));
  app.get('/docs/assets/:file', (c) => {
    const asset = assets.get(c.req.param('file'));
    if (asset === undefined) throw new WalrusError(ErrorCode.NOT_FOUND, `no docs asset ${c.req.path}`);
    return c.body(asset.body as Uint8Array<ArrayBuffer>, 200, {
      'content-type': asset.contentType,
      'cache-control': 'public, max-age=3600',
    });
  });
}
