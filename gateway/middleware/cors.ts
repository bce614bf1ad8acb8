/**
 * CORS, configurable per gateway (`--cors-origins`): off by default, `*`, or a list of origins.
 * Kept as a plain function as well as middleware because SSE tails write their head straight to the
 * Node response and must carry the same headers.
 */
import type { MiddlewareHandler } from 'hono';

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

export function corsMiddleware(origins: CorsOrigins): MiddlewareHandler {
  return async (c, next) => {
    const origin = c.req.header('origin');
    const headers = corsHeaders(origins, origin);
    if (c.req.method === 'OPTIONS' && c.req.header('access-control-request-method') !== undefined) {
      if (headers['access-control-allow-origin'] === undefined) return c.body(null, 204);
      return c.body(null, 204, {
        ...headers,
        'access-control-allow-methods': allowMethods,
        'access-control-allow-headers': allowHeaders,
        'access-control-max-age': String(preflightMaxAgeSeconds),
      });
    }
    for (const [name, value] of Object.entries(headers)) c.header(name, value);
    await next();
    return undefined;
  };
}
