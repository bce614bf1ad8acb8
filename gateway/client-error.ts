/**
 * The gateway's answers to requests its HTTP layer refuses before the app sees them (node:http's
 * `clientError`): headers or request line over `maxHeaderSize` (431 HEADERS_TOO_LARGE), a request
 * whose headers or body did not arrive within `headersTimeout`/`requestTimeout` (408
 * REQUEST_TIMEOUT), bytes that are not HTTP/1.1 (400 BAD_REQUEST). Node's own answers to these
 * have empty bodies; these are problem+json like every other error, built by the same problemOf.
 *
 * Each answer closes the connection (the parser's state is lost): the reply is sent, what the
 * client still sends is read and dropped for `clientErrorLingerMs`, then the socket is destroyed.
 * (Destroying at once, with the rest of a 100 KB header unread, resets the connection, and a reset
 * can discard the reply before the client reads it.) Nothing is written when a response on the
 * socket has already started (its bytes would corrupt it): the socket is dropped.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ErrorCode } from '../node/protocol/error-codes.js';
import { clientErrorLingerMs } from './limits.js';
import { problemContentType, problemOf } from './middleware/problem.js';

export interface ClientErrorLimits {
  /** node:http's maxHeaderSize: bytes of the request line plus headers. */
  readonly headerSizeMaxBytes: number;
  readonly headersTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

/** The problem for a clientError, or null when the connection is just dropped (a reset, a bad TLS hello). */
export function clientErrorProblem(error: Error & { code?: string }, limits: ClientErrorLimits) {
  const code = error.code ?? '';
  if (code === 'HPE_HEADER_OVERFLOW') {
    return problemOf(
      ErrorCode.HEADERS_TOO_LARGE,
      `the request line and headers exceed ${limits.headerSizeMaxBytes} bytes (a URL that long, a header that large or too many headers)`,
    );
  }
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    return problemOf(
      ErrorCode.REQUEST_TIMEOUT,
      `the request did not arrive whole in time (headers within ${limits.headersTimeoutMs} ms, the whole request within ${limits.requestTimeoutMs} ms)`,
    );
  }
  if (code.startsWith('HPE_')) {
    return problemOf(ErrorCode.BAD_REQUEST, `the request is not valid HTTP/1.1 (${code})`);
  }
  return null;
}

/** A `clientError` listener for the gateway's http(s) server. */
export function clientErrorHandler(limits: ClientErrorLimits) {
  /** Sockets answered and lingering: a later parse error of theirs (more bytes) is not answered again. */
  const answered = new WeakSet<Duplex>();
  return (error: Error & { code?: string }, socket: Duplex): void => {
    if (answered.has(socket)) return;
    const started = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
    const problem = clientErrorProblem(error, limits);
    if (problem === null || !socket.writable || started?.headersSent === true) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify(problem);
    const head =
      `HTTP/1.1 ${problem.status} ${STATUS_CODES[problem.status] ?? ''}\r\n` +
      `Content-Type: ${problemContentType}\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      'X-Content-Type-Options: nosniff\r\n' +
      'Connection: close\r\n\r\n';
    answered.add(socket);
    socket.end(head + body);
    socket.resume();
    setTimeout(() => socket.destroy(), clientErrorLingerMs).unref();
  };
}
