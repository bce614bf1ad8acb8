/**
 * Durable Streams features live in the cluster, not in a gateway: a closed stream, a fork and a
 * producer's epoch behave the same after the leader of the topics' active segments is SIGKILLed
 * and their segments are recovered on the survivors (real walrus-node processes, WalrusClient).
 */
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { ErrorCode } from '../../node/protocol/error-codes.js';
import type { StreamAction } from '../../node/protocol/messages.js';
import { eventually } from '../helpers/eventually.js';
import { withCluster } from '../helpers/local-cluster.js';
import { nodeMetrics as metrics } from '../helpers/node-text.js';

const bytes = (s: string) => ({ value: new TextEncoder().encode(s) });

function create(path: string, forkOf: { topic: string; offset: number } | null = null): StreamAction {
  return { kind: 'create', path, contentType: 'text/plain', ttlSeconds: null, expiresAtMs: null, forkOf };
}

async function codeOf(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code;
  }
}

test.serial('closed, forked and producer-fenced streams stay so after a segment failover', async (t) => {
  await withCluster(t, { nodeCount: 3 }, async (cluster) => {
    await eventually('three voters', async () => {
      const ms = await Promise.all(cluster.nodes.map((n) => metrics(n.clientAddr)));
      return ms.every((m) => m?.membership_config.voters.length === 3) ? true : undefined;
    });
    const client = new WalrusClient({ nodes: cluster.clientAddrs, requestTimeoutMs: 3000, retryCountMax: 3 });
    try {
      const closedInfo = await eventually('closed stream', () =>
        client.stream('ds.closed', create('/v1/stream/closed')),
      );
      const leaderId = (await client.describeTopic(closedInfo.stream!.topic)).leaderNodeId;
      /** Creates a stream whose first segment the same node leads (placement hashes the name). */
      const onLeader = async (base: string, forkOf: { topic: string; offset: number } | null = null) => {
        for (let i = 0; i < 40; i++) {
          const name = `ds.${base}${i}`;
          await client.stream(name, create(`/v1/stream/${base}${i}`, forkOf));
          if ((await client.describeTopic(name)).leaderNodeId === leaderId) return name;
          await client.stream(name, { kind: 'delete' });
        }
        throw new Error(`no name for ${base} placed on node ${leaderId}`);
      };
      await client.append('ds.closed', [bytes('a'), bytes('b')]);
      await client.append('ds.closed', [bytes('c')], { close: true });
      t.is(await codeOf(client.append('ds.closed', [bytes('late')])), ErrorCode.STREAM_CLOSED);

      const sourceName = await onLeader('source');
      await client.append(sourceName, [bytes('s0'), bytes('s1')]);
      const forkName = await onLeader('fork', { topic: sourceName, offset: 1 });
      await client.append(forkName, [bytes('f0')]);

      const producerName = await onLeader('producer');
      await client.append(producerName, [bytes('p0')], { producerId: 'w', producerEpoch: 2, producerSeq: 0 });
      await client.append(producerName, [bytes('p1')], { producerId: 'w', producerEpoch: 2, producerSeq: 1 });

      // Kill the node that leads all four active segments: each is recovered on a survivor.
      const victim = cluster.nodes.findIndex((n) => n.spec.nodeId === leaderId);
      t.true(victim >= 0);
      await cluster.kill(victim, 'SIGKILL');
      const survivors = cluster.nodes.filter((_, i) => i !== victim).map((n) => n.clientAddr);
      const after = new WalrusClient({ nodes: survivors, requestTimeoutMs: 3000, retryCountMax: 3 });
      try {
        // The closed stream is still closed once its segment is recovered elsewhere.
        const code = await eventually(
          'a refused append on the recovered closed stream',
          async () => {
            const c = await codeOf(after.append('ds.closed', [bytes('late')]));
            return c === ErrorCode.STREAM_CLOSED ? c : undefined;
          },
          60_000,
        );
        t.is(code, ErrorCode.STREAM_CLOSED);
        const info = await after.stream('ds.closed', { kind: 'get' });
        t.true(info.stream?.closed);
        t.is(info.stream?.endOffset, 3);
        const read = await eventually('a read of the closed stream', () =>
          after.read('ds.closed', 0, { recordCountMax: 10 }),
        );
        t.deepEqual(
          read.records.map((r) => new TextDecoder().decode(r.value)),
          ['a', 'b', 'c'],
        );

        // The fork still knows its source and fork point; both are readable on their new leaders.
        const forkRead = await eventually('a read of the fork', () =>
          after.read(forkName, 0, { recordCountMax: 10 }),
        );
        t.is(forkRead.records.length, 1);
        const fork = await after.stream(forkName, { kind: 'get' });
        t.deepEqual(fork.stream?.forkOf, { topic: sourceName, offset: 1 });
        const source = await eventually('a read of the source', () =>
          after.read(sourceName, 0, { recordCountMax: 10 }),
        );
        t.is(source.records.length, 2);

        // The producer's epoch 2 still fences epoch 1, and its last sequence is still a duplicate.
        const fenced = await eventually(
          'the producer table on the new leader',
          async () => {
            const c = await codeOf(
              after.append(producerName, [bytes('old')], {
                producerId: 'w',
                producerEpoch: 1,
                producerSeq: 0,
              }),
            );
            return c === ErrorCode.PRODUCER_FENCED || c === ErrorCode.BAD_REQUEST ? c : undefined;
          },
          60_000,
        );
        t.is(fenced, ErrorCode.PRODUCER_FENCED);
        const dup = await after.append(producerName, [bytes('p1')], {
          producerId: 'w',
          producerEpoch: 2,
          producerSeq: 1,
        });
        t.true(dup.duplicate);
      } finally {
        await after.close();
      }
    } finally {
      await client.close();
    }
  });
});
