/**
 * Upstream failures map through the one code table (node/protocol/error-codes.ts) to HTTP. Its own
 * file and node: the UNAVAILABLE case SIGKILLs the node, which would break any test running beside
 * it. Tests here are serial for the same reason.
 */
import test from 'ava';
import type { RequestFor, Upstream, UpstreamCallOptions } from '../../../gateway/upstream.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import type { RequestOp, ResponseOf } from '../../../node/protocol/messages.js';
import { makeGateway, problemCode, useRealNode } from './helpers.js';

const node = useRealNode(test);

/**
 * The one failure a real node cannot be made to produce here: DISK_FULL needs a real ENOSPC, that
 * is a full file system under the node's data directory. Mounting a size-limited tmpfs needs
 * CAP_SYS_ADMIN (not available to every developer or CI runner), and filling the shared /tmp would
 * hurt every other process on the machine. So this wrapper throws the node's own DISK_FULL error
 * (what the WAL answers on ENOSPC) and passes everything else to the real client.
 */
class DiskFullUpstream implements Upstream {
  constructor(private readonly inner: Upstream) {}

  request<Op extends RequestOp>(req: RequestFor<Op>, options?: UpstreamCallOptions): Promise<ResponseOf<Op>> {
    if (req.op === 'append') {
      return Promise.reject(new WalrusError(ErrorCode.DISK_FULL, 'no space left on device (injected)'));
    }
    return this.inner.request(req, options);
  }
}

test.serial('DISK_FULL from the node is 507 problem+json', async (t) => {
  const { json } = makeGateway(node(), { upstream: new DiskFullUpstream(node().client) });
  t.is((await json('POST', '/v1/topics', { name: 'disk-full' })).status, 201);
  const res = await json('POST', '/v1/topics/disk-full/records', { records: [{ value: 'v' }] });
  t.is(res.status, 507);
  t.is(await problemCode(res), 'DISK_FULL');
});

// Declared last and serial: after it the node is gone.
test.serial('a node that was SIGKILLed is 503 UNAVAILABLE with Retry-After', async (t) => {
  const { call } = makeGateway(node());
  t.is((await call('/v1/topics')).status, 200, 'the node answers before it is killed');
  await node().cluster.kill(0, 'SIGKILL');
  const res = await call('/v1/topics');
  t.is(res.status, 503);
  t.is(res.headers.get('retry-after'), '1');
  t.is(await problemCode(res), 'UNAVAILABLE');
});
