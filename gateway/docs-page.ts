/**
 * The human docs at /docs: Swagger UI (swagger-ui-dist, served by the gateway from its own
 * node_modules; no CDN) rendering /openapi.yaml in the browser: every operation with its
 * parameters, request and response schemas, and "try it out" against this gateway. The page and
 * its initializer are ours; the assets are read once at start-up from a fixed list (no path from
 * the request ever reaches the file system). `listOperations` is the spec's operation list for
 * the route-coverage test.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/** The asset files /docs/assets/ serves, with their content types. */
const assetTypes: Readonly<Record<string, string>> = {
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'text/javascript; charset=utf-8',
};

export interface DocsAsset {
  readonly body: Uint8Array;
  readonly contentType: string;
}

/** Reads the Swagger UI assets from the installed swagger-ui-dist package. */
export function loadDocsAssets(): ReadonlyMap<string, DocsAsset> {
  const dir = path.dirname(createRequire(import.meta.url).resolve('swagger-ui-dist/package.json'));
  const out = new Map<string, DocsAsset>();
  for (const [name, contentType] of Object.entries(assetTypes))
    out.set(name, { body: fs.readFileSync(path.join(dir, name)), contentType });
  out.set('init.js', {
    body: Buffer.from(
      `window.ui = SwaggerUIBundle({ url: '/openapi.yaml', dom_id: '#docs', deepLinking: true, defaultModelsExpandDepth: 1, defaultModelExpandDepth: 3, tryItOutEnabled: false });\n`,
    ),
    contentType: 'text/javascript; charset=utf-8',
  });
  return out;
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

interface OperationLine {
  readonly method: string;
  readonly path: string;
  readonly summary: string;
}

/** The spec's operations, read by its fixed indentation (which `npx redocly lint` keeps honest). */
export function listOperations(specText: string): OperationLine[] {
  const out: OperationLine[] = [];
  let inPaths = false;
  let path = '';
  for (const line of specText.split('\n')) {
    if (/^\S/.test(line)) inPaths = line.startsWith('paths:');
    if (!inPaths) continue;
    const p = /^ {2}(\/\S*):\s*$/.exec(line);
    if (p) {
      path = p[1]!;
      continue;
    }
    const m = /^ {4}(get|post|put|patch|delete):\s*$/.exec(line);
    if (m) {
      out.push({ method: m[1]!.toUpperCase(), path, summary: '' });
      continue;
    }
    const s = /^ {6}summary:\s*(.*)$/.exec(line);
    if (s && out.length > 0) {
      const last = out[out.length - 1]!;
      out[out.length - 1] = { ...last, summary: s[1]!.replace(/^'(.*)'$/, '$1') };
    }
  }
  return out;
}

export function renderDocsPage(specText: string): string {
  const title = /^ {2}title:\s*(.*)$/m.exec(specText)?.[1] ?? 'API';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><noscript>This reference needs JavaScript; the document itself is at <a href="/openapi.yaml">/openapi.yaml</a>.</noscript>
<div id="docs"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body></html>
`;
}
