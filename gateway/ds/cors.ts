/**
 * CORS for the DS routes: the gateway's own policy (`--cors-origins`: off, `*` or a list), with the
 * DS request and response headers a browser DS client needs (the topic routes' lists do not name
 * them). Preflights of DS paths are answered here (app.ts leaves them to this router).
 */
import type { CorsOrigins } from '../middleware/cors.js';
import type { GatewayContext } from '../routes/deps.js';

const allowMethods = 'GET, POST, PUT, DELETE, HEAD, OPTIONS';
const allowHeaders =
  'Authorization, Content-Type, If-None-Match, Last-Event-ID, Stream-Seq, Stream-TTL, Stream-Expires-At, Stream-Closed, Producer-Id, Producer-Epoch, Producer-Seq, Stream-Forked-From, Stream-Fork-Offset, Stream-Fork-Sub-Offset';
const exposeHeaders =
  'Stream-Next-Offset, Stream-Cursor, Stream-Up-To-Date, Stream-Closed, Stream-TTL, Stream-Expires-At, Stream-SSE-Data-Encoding, Producer-Epoch, Producer-Seq, Producer-Expected-Seq, Producer-Received-Seq, ETag, Content-Type, Location, Retry-After';
const preflightMaxAgeSeconds = 600;

export function dsCorsHeaders(origins: CorsOrigins, origin: string | undefined): Record<string, string> {
  if (origins === null) return {};
  if (origins === '*')
    return { 'access-control-allow-origin': '*', 'access-control-expose-headers': exposeHeaders };
  if (origin === undefined || !origins.includes(origin)) return {};
  return {
    'access-control-allow-origin': origin,
    'access-control-expose-headers': exposeHeaders,
    vary: 'Origin',
  };
}

export function dsPreflight(c: GatewayContext, origins: CorsOrigins): Response {
  const headers: Record<string, string> = {
    'x-content-type-options': 'nosniff',
    ...dsCorsHeaders(origins, c.req.header('origin')),
  };
  if (headers['access-control-allow-origin'] !== undefined) {
    headers['access-control-allow-methods'] = allowMethods;
    headers['access-control-allow-headers'] = allowHeaders;
    headers['access-control-max-age'] = String(preflightMaxAgeSeconds);
  }
  return new Response(null, { status: 204, headers });
}
