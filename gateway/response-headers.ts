/**
 * Request and response headers without a `Headers` object on the hot path. Hono keeps headers set with
 * `c.header()` (and any response given more than one header) in a WHATWG `Headers`, which costs
 * more per request than the rest of the middleware together. On Node, headers every response
 * carries (nosniff, CORS) are set on the Node response instead, which `writeHead` merges into
 * whatever Hono answers, errors and SSE tails included; handlers then answer with a plain record.
 * Without Node bindings (`app.request()` in tests) both fall back to Hono's own calls.
 */
import type { GatewayContext } from './routes/deps.js';

/**
 * A request header by its lower-case name. On Node it is read from the IncomingMessage's own
 * parsed headers (what Hono's adapter returns too, after validating the name and the value again
 * on every call: a few of those per append were measurable on the gateway's hottest path).
 */
export function requestHeader(c: GatewayContext, lowerName: string): string | undefined {
  const incoming = c.env?.incoming;
  if (incoming === undefined) return c.req.header(lowerName);
  const value = incoming.headers[lowerName];
  return typeof value === 'string' ? value : value?.join(', ');
}

/** Sets a header every answer to this request carries, whichever handler or error produces it. */
export function setResponseHeader(c: GatewayContext, name: string, value: string): void {
  const outgoing = c.env?.outgoing;
  if (outgoing !== undefined && !outgoing.headersSent) outgoing.setHeader(name, value);
  else c.header(name, value);
}

/** A JSON answer with `headers` added, built without a `Headers` object when on Node. */
export function jsonResponse(
  c: GatewayContext,
  body: unknown,
  status: 200 | 201,
  headers: Record<string, string>,
): Response {
  if (c.env?.outgoing !== undefined) {
    return new Response(JSON.stringify(body), {
      status,
      headers: { 'content-type': 'application/json', ...headers },
    });
  }
  for (const [name, value] of Object.entries(headers)) c.header(name, value);
  return c.json(body as object, status);
}
