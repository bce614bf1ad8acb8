/**
 * The connection pool: one pipelined connection per peer, reused, bounded by peerCountMax (the least
 * recently used peer's connection is closed), and refusing work once closed.
 */
import test from 'ava';
import { decodeReply, encodeReply, encodeRequest } from '../../../node/protocol/binary-codec.js';
import { readRequestId } from '../../../node/protocol/binary-header.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { ConnectionPool } from '../../../node/transport/connection-pool.js';
import { TransportError } from '../../../node/transport/transport-error.js';
import { startServer } from './helpers.js';

test('reuses one connection per peer, evicts the least recently used, refuses after close', async (t) => {
  const servers = await Promise.all(
    [1, 2, 3].map((nodeId) =>
      startServer((conn, payload) => conn.send(encodeReply(readRequestId(payload)!, 'ping', { nodeId }))),
    ),
  );
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  const pool = new ConnectionPool({}, 2);
  t.teardown(() => pool.close());
  const ping = (i: number) => {
    const s = servers[i]!;
    return pool
      .get(s.addr, '127.0.0.1', s.port)
      .request(encodeRequest(0, { op: 'ping' }))
      .then((p) => (decodeReply(p) as { response: { nodeId: number } }).response.nodeId);
  };
  t.is(await ping(0), 1);
  const first = pool.get(servers[0]!.addr, '127.0.0.1', servers[0]!.port);
  t.is(await ping(0), 1);
  t.is(pool.get(servers[0]!.addr, '127.0.0.1', servers[0]!.port), first, 'the same connection is reused');
  t.is(await ping(1), 2);
  t.is(await ping(2), 3);
  t.is(pool.size(), 2);
  t.is(first.state, 'closed', 'the least recently used peer was evicted');
  t.is(await ping(0), 1, 'an evicted peer gets a new connection');
  await pool.close();
  const err = t.throws(() => pool.get(servers[0]!.addr, '127.0.0.1', servers[0]!.port));
  t.true(err instanceof TransportError && err.code === ErrorCode.UNAVAILABLE && !err.sent);
});
