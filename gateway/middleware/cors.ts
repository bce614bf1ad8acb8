/**
 * CORS, configurable per gateway (`--cors-origins`): off by default, `*`, or a list of origins.
 * corsHeaders is a plain function because SSE tails write their head straight to the
 * Node response and must carry the same headers.
 */
import { requestHeader, setResponseHeader } from '../response-headers.js';
import type { GatewayContext } from '../routes/deps.js';

export type CorsOrigins = '*' | readonly string[] | null;

const allowMethods = 'GET, POST, PATCH, DELETE, OPTIONS';
const allowHeaders = 'Authorization, Content-Type, Producer-Id, Producer-Seq, Expected-Offset, Last-Event-ID';
const exposeHeaders = 'Walrus-Next-Offset, Walrus-First-Offset, Location, Retry-After';
const preflightMaxAgeSeconds = 600;

export function corsHeaders(origins: CorsOrigins, origin: string | undefined): Record<string, string> {
  if (origins === null || origin === undefined) return {};
  if (origins === '*')
    return { 'access-control-allow-origin': '*', 'access-control-expose-headers': exposeHeaders };
  if (!origins.includes(origin)) return {};
  return {
    'access-control-allow-origin': origin,
    'access-control-expose-headers': exposeHeaders,
    vary: 'Origin',
  };
}

/**
 * Applies CORS to one request: answers a preflight (returns its 204), or sets the headers of an
 * allowed origin on whatever the request is answered with (returns undefined).
 */
export function applyCors(c: GatewayContext, origins: CorsOrigins): Response | undefined {
  const preflight =
    c.req.method === 'OPTIONS' && requestHeader(c, 'access-control-request-method') !== undefined;
  if (origins === null && !preflight) return undefined;
  const headers = corsHeaders(origins, requestHeader(c, 'origin'));
  if (preflight) {
    if (headers['access-control-allow-origin'] === undefined) return c.body(null, 204);
    return c.body(null, 204, {
      ...headers,
      'access-control-allow-methods': allowMethods,
      'access-control-allow-headers': allowHeaders,
      'access-control-max-age': String(preflightMaxAgeSeconds),
    });
  }
  for (const [name, value] of Object.entries(headers)) setResponseHeader(c, name, value);
  return undefined;
}
