/**
 * The gateway's access log: one `http request` line per request (or per sampled request), in the
 * one log shape (node/log.ts), with `method`, `path`, `status`, `durationMs`, `bytes` and
 * `requestId`. Off by default (it is not even registered then, so it costs nothing); on with
 * `--access-log on`, or sampled with `--access-log 0.1` (answers of 500 and above are always
 * logged). The request id is the client's `x-request-id` when it sends a sane one, else a fresh
 * UUID, and is echoed back in `x-request-id`.
 *
 * On Node the line is written when the response has gone (or the client went away): an SSE tail
 * is logged when it ends, with its real duration and bytes. `bytes` is what the socket sent for
 * the response (status line and headers included); without Node bindings (`app.request()` in
 * tests) it is the body's content-length, or null when the body is streamed.
 */
import { randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { GatewayEnv } from '../routes/deps.js';

/** Access log setting: 0 = off, 1 = every request, in between = that fraction of requests. */
export type AccessLogSampleRate = number;

/** Longest client-given request id kept (longer or non-ASCII ones are replaced by a UUID). */
export const requestIdLengthMax = 128;

export interface AccessLogLine {
  readonly method: string;
  readonly path: string;
  readonly status: number;
  readonly durationMs: number;
  readonly bytes: number | null;
  readonly requestId: string;
  /** The client went away before the response was complete. */
  readonly aborted?: boolean;
}

/**
 * Parses the `--access-log` / WALRUS_ACCESS_LOG value: `off` (or 0), `on` (or 1, `all`), or a
 * fraction in (0, 1). Throws a plain Error naming the accepted values (start-up only).
 */
export function parseAccessLogSetting(value: string | undefined): AccessLogSampleRate {
  if (value === undefined || value === '' || value === 'off') return 0;
  if (value === 'on' || value === 'all') return 1;
  const rate = Number(value);
  if (!Number.isFinite(rate) || rate < 0 || rate > 1)
    throw new Error(`--access-log must be off, on or a fraction between 0 and 1, not '${value}'`);
  return rate;
}

function requestIdOf(header: string | undefined): string {
  if (header !== undefined && header.length <= requestIdLengthMax && /^[\x21-\x7e]+$/.test(header))
    return header;
  return randomUUID();
}

/** The middleware; register it first so that it sees every answer, errors included. */
export function accessLog(
  sampleRate: AccessLogSampleRate,
  write: (line: AccessLogLine) => void,
  random: () => number = Math.random,
): MiddlewareHandler<GatewayEnv> {
  const keep = (status: number): boolean => status >= 500 || sampleRate >= 1 || random() < sampleRate;
  return async (c, next) => {
    const startedAt = performance.now();
    const requestId = requestIdOf(c.req.header('x-request-id'));
    const method = c.req.method;
    const path = c.req.path;
    const outgoing = c.env?.outgoing;
    if (outgoing !== undefined) {
      outgoing.setHeader('x-request-id', requestId);
      const socket = outgoing.socket;
      const bytesBefore = socket?.bytesWritten ?? 0;
      outgoing.once('close', () => {
        const status = outgoing.statusCode;
        if (!keep(status)) return;
        write({
          method,
          path,
          status,
          durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
          bytes: socket === null ? null : socket.bytesWritten - bytesBefore,
          requestId,
          ...(outgoing.writableFinished ? {} : { aborted: true }),
        });
      });
      await next();
      return;
    }
    await next();
    try {
      c.res.headers.set('x-request-id', requestId);
    } catch {
      // An immutable response (a proxied one): it goes without the header.
    }
    if (!keep(c.res.status)) return;
    const length = c.res.headers.get('content-length');
    write({
      method,
      path,
      status: c.res.status,
      durationMs: Math.round((performance.now() - startedAt) * 1000) / 1000,
      bytes: length === null ? null : Number(length),
      requestId,
    });
  };
}
