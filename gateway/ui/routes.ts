/**
 * The web console at /ui: three static files (assets/index.html, console.js, console.css) read
 * once when the app is made and served from memory, from the package itself (no CDN). The build
 * copies assets/ next to the compiled module (package.json postbuild), so a packed release has
 * them; run from the sources, they are read from gateway/ui/assets. The page is public (it holds
 * no data); what it shows comes from the token-protected API, with the token the user gives it.
 * A strict Content-Security-Policy allows only the gateway's own scripts, styles and API.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Hono } from 'hono';
import type { GatewayContext, GatewayEnv } from '../routes/deps.js';

export const uiPaths = ['/ui', '/ui/', '/ui/console.js', '/ui/console.css'] as const;

const contentSecurityPolicy =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** The folder holding the console's files: beside the compiled module, else in the sources. */
function assetsDir(): string {
  for (const dir of [
    path.join(import.meta.dirname, 'assets'),
    path.resolve(import.meta.dirname, '../../../gateway/ui/assets'),
  ]) {
    if (fs.existsSync(path.join(dir, 'index.html'))) return dir;
  }
  throw new Error('the console files (gateway/ui/assets) are missing: run npm run build');
}

export function uiRoutes(app: Hono<GatewayEnv>): void {
  const dir = assetsDir();
  const files = {
    html: fs.readFileSync(path.join(dir, 'index.html'), 'utf8'),
    js: fs.readFileSync(path.join(dir, 'console.js'), 'utf8'),
    css: fs.readFileSync(path.join(dir, 'console.css'), 'utf8'),
  };
  const headers = (type: string) => ({
    'content-type': type,
    'content-security-policy': contentSecurityPolicy,
    'cache-control': 'no-cache',
  });
  const page = (c: GatewayContext) => c.body(files.html, 200, headers('text/html; charset=utf-8'));
  app.get('/ui', page);
  app.get('/ui/', page);
  app.get('/ui/console.js', (c) => c.body(files.js, 200, headers('text/javascript; charset=utf-8')));
  app.get('/ui/console.css', (c) => c.body(files.css, 200, headers('text/css; charset=utf-8')));
}
