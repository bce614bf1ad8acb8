/**
 * The transport's TLS listener and the client's token handshake, in process on real sockets:
 * a FrameServer with a certificate serves a PipelinedConnection that trusts its CA, refuses a
 * plaintext one (counted, not served) and one that trusts another CA; a connection with a token
 * sends `authenticate` before any request, and a refused token fails the waiting requests with
 * the server's code, known not sent.
 */
import test from 'ava';
import {
  decodeRequest,
  encodeErrorReply,
  encodeReply,
  encodeRequest,
} from '../../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import {
  FrameServer,
  type FrameConnection,
  frameServerDefaults,
} from '../../../node/transport/frame-server.js';
import { PipelinedConnection } from '../../../node/transport/pipelined-connection.js';
import type { TransportError } from '../../../node/transport/transport-error.js';
import type { TlsServerSettings } from '../../../node/transport/tls-listener.js';
import { makeTestCa } from '../../helpers/test-certs.js';

const goodToken = 'a-good-token-123';

/** Answers ping with node id 7 and authenticate by token; records the ops it saw, in order. */
function startServer(tls: TlsServerSettings | undefined, seen: string[]) {
  const server = new FrameServer({
    host: '127.0.0.1',
    port: 0,
    frameSizeMaxBytes: frameServerDefaults.frameSizeMaxBytes,
    connectionCountMax: 16,
    idleTimeoutMs: 60_000,
    inFlightMaxPerConnection: 16,
    writeBufferMaxBytes: frameServerDefaults.writeBufferMaxBytes,
    ...(tls === undefined ? {} : { tls }),
    onFrame(conn: FrameConnection, payload: Buffer) {
      const decoded = decodeRequest(payload);
      if (decoded.kind === 'malformed') throw new Error('malformed');
      const { requestId, request } = decoded;
      seen.push(request.op);
      if (request.op === 'authenticate') {
        if (request.token === goodToken)
          conn.send(encodeReply(requestId, 'authenticate', { scopes: ['read'] }));
        else {
          conn.send(
            encodeErrorReply(
              requestId,
              new WalrusError(ErrorCode.UNAUTHENTICATED, 'no such token'),
              'authenticate',
            ),
          );
          conn.close();
        }
        return;
      }
      conn.send(encodeReply(requestId, 'ping', { nodeId: 7 }));
    },
  });
  return server;
}

const ping = encodeRequest(1, { op: 'ping' });

test('a TLS client port serves clients that trust its CA and refuses plaintext and other-CA clients', async (t) => {
  const ca = makeTestCa('transport');
  const other = makeTestCa('transport-other');
  const cert = ca.issue('server');
  const server = startServer({ cert: cert.cert, key: cert.key, requestCert: false }, []);
  const { port } = await server.listen();
  const conns: PipelinedConnection[] = [];
  t.teardown(async () => {
    for (const c of conns) await c.close();
    await server.close();
    ca.remove();
    other.remove();
  });
  const connect = (options: Partial<ConstructorParameters<typeof PipelinedConnection>[0]>) => {
    const c = new PipelinedConnection({ host: '127.0.0.1', port, requestTimeoutMs: 5_000, ...options });
    conns.push(c);
    return c;
  };

  const trusted = connect({ tls: { ca: ca.ca } });
  t.true((await trusted.request(ping)).length > 0);

  const plain = connect({});
  const plainError = await t.throwsAsync(plain.request(ping));
  t.is((plainError as WalrusError).code, ErrorCode.UNAVAILABLE);
  t.true(server.tlsFailureCount() >= 1, 'the plaintext handshake was refused and counted');

  const distrustful = connect({ tls: { ca: other.ca } });
  const refused = await t.throwsAsync(distrustful.request(ping));
  t.is((refused as WalrusError).code, ErrorCode.UNAVAILABLE);
  t.false((refused as TransportError).sent, 'nothing was sent to a server the client does not trust');
});

test('a token is proved before any request; a refused one fails the waiting requests, not sent', async (t) => {
  const seen: string[] = [];
  const server = startServer(undefined, seen);
  const { port } = await server.listen();
  const good = new PipelinedConnection({ host: '127.0.0.1', port, token: goodToken });
  const bad = new PipelinedConnection({ host: '127.0.0.1', port, token: 'a-wrong-token-99' });
  t.teardown(async () => {
    await good.close();
    await bad.close();
    await server.close();
  });
  await Promise.all([good.request(ping), good.request(ping)]);
  t.deepEqual(seen, ['authenticate', 'ping', 'ping'], 'authenticate first, then the requests');

  seen.length = 0;
  const results = await Promise.allSettled([bad.request(ping), bad.request(ping)]);
  for (const r of results) {
    t.is(r.status, 'rejected');
    const error = (r as PromiseRejectedResult).reason as TransportError;
    t.is(error.code, ErrorCode.UNAUTHENTICATED);
    t.false(error.sent);
  }
  t.deepEqual(seen, ['authenticate'], 'no request reached the server');
});
