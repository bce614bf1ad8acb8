/**
 * A real multi-node cluster on loopback, formed exactly as the seed deployment doc says (node 1
 * bootstraps, the others --join it): the quick-start exchange from every node, forwarding, a
 * cluster-wide GET cursor, rollover across nodes, hot join, kill -9 of the Raft leader, a full
 * restart from the data directories, and a wrong cluster secret refused.
 */
import test from 'ava';
import { WalrusClient } from '../../node/client/walrus-client.js';
import { decodeReply, encodeRequest } from '../../node/protocol/binary-codec.js';
import { type TestCluster, withCluster } from '../helpers/local-cluster.js';
import { frame, portOf, rawExchange, splitFrames } from '../helpers/raw-socket.js';
import { eventually } from '../helpers/eventually.js';
import { nodeMetrics, textCommands } from '../helpers/node-text.js';

const text = (addr: string, ...commands: string[]): Promise<string[]> => textCommands(addr, commands);

/** METRICS of a node that must answer (a null answer is retried by eventually()). */
async function metrics(addr: string) {
  const m = await nodeMetrics(addr, 15_000);
  if (m === null) throw new Error(`${addr} did not answer METRICS`);
  return m;
}

/** Waits until every live node reports the same leader and the full voter set. */
async function converged(cluster: TestCluster, voters: number[], skip: number[] = []): Promise<number> {
  return eventually(`voters ${voters} with one leader`, async () => {
    const all = await Promise.all(
      cluster.nodes.filter((n) => !skip.includes(n.spec.nodeId)).map((n) => metrics(n.clientAddr)),
    );
    const leader = all[0]!.current_leader;
    if (leader === null || !all.every((m) => m.current_leader === leader)) return undefined;
    if (!all.every((m) => JSON.stringify(m.membership_config.voters) === JSON.stringify(voters)))
      return undefined;
    return leader;
  });
}

function leaderIndex(cluster: TestCluster, leaderId: number): number {
  return cluster.nodes.findIndex((n) => n.spec.nodeId === leaderId);
}

test.serial('formation from the seed commands; the quick-start exchange works from every node', async (t) => {
  await withCluster(t, { nodeCount: 3 }, async (cluster) => {
    const leader = await converged(cluster, [1, 2, 3]);
    t.true([1, 2, 3].includes(leader));
    const m = await metrics(cluster.nodes[leaderIndex(cluster, leader)]!.clientAddr);
    t.is(m.state, 'Leader');
    // One replication entry per member, the leader's own included (as openraft reports it).
    t.deepEqual(Object.keys(m.replication).sort(), ['1', '2', '3']);
    for (const n of cluster.nodes) {
      const topic = `logs${n.spec.nodeId}`;
      const replies = await text(
        n.clientAddr,
        `REGISTER ${topic}`,
        `PUT ${topic} hello from node ${n.spec.nodeId}`,
        `GET ${topic}`,
        `STATE ${topic}`,
      );
      t.deepEqual(replies.slice(0, 3), ['OK', 'OK', `OK hello from node ${n.spec.nodeId}`]);
      const state = JSON.parse(replies[3]!) as {
        topic: string;
        current_segment: number;
        leader_node: number;
      };
      t.is(state.topic, topic);
      t.is(state.current_segment, 1);
      t.true([1, 2, 3].includes(state.leader_node));
    }
    // Topics are placed over the voters: with three topics, more than one node leads something.
    const leaders = new Set<number>();
    for (const name of ['a', 'b', 'c', 'd', 'e', 'f']) {
      await text(cluster.nodes[0]!.clientAddr, `REGISTER place-${name}`);
      const [s] = await text(cluster.nodes[0]!.clientAddr, `STATE place-${name}`);
      leaders.add((JSON.parse(s!) as { leader_node: number }).leader_node);
    }
    t.true(leaders.size > 1, `all topics landed on ${[...leaders]}`);
  });
});

test.serial('appends through every node are forwarded; the GET cursor is cluster-wide', async (t) => {
  await withCluster(t, { nodeCount: 3 }, async (cluster) => {
    await converged(cluster, [1, 2, 3]);
    await text(cluster.nodes[1]!.clientAddr, 'REGISTER shared');
    for (let i = 0; i < 12; i++) {
      const [r] = await text(cluster.nodes[i % 3]!.clientAddr, `PUT shared m${i}`);
      t.is(r, 'OK');
    }
    const got: string[] = [];
    for (let i = 0; i < 13; i++) {
      const [r] = await text(cluster.nodes[(i + 2) % 3]!.clientAddr, 'GET shared');
      got.push(r!);
    }
    t.deepEqual(got, [...Array.from({ length: 12 }, (_, i) => `OK m${i}`), 'EMPTY']);
  });
});

test.serial(
  'an append that asks not to be forwarded is redirected to the segment leader, not applied',
  async (t) => {
    await withCluster(t, { nodeCount: 3 }, async (cluster) => {
      await converged(cluster, [1, 2, 3]);
      const admin = new WalrusClient({ nodes: cluster.nodes.map((n) => n.clientAddr) });
      t.teardown(() => admin.close());
      await admin.createTopic('direct');
      const { leaderNodeId } = await admin.describeTopic('direct');
      const leader = cluster.nodes.find((n) => n.spec.nodeId === leaderNodeId)!;
      const other = cluster.nodes.find((n) => n.spec.nodeId !== leaderNodeId)!;
      // The node's own answer, on a raw connection (the cluster client would follow the redirect).
      const ask = encodeRequest(7, {
        op: 'append',
        topic: 'direct',
        records: [{ value: Buffer.from('x') }],
        noForward: true,
      });
      const raw = await rawExchange(portOf(other.clientAddr), [frame(ask)], {
        expectFrames: 1,
        quietMs: 10_000,
      });
      const reply = decodeReply(splitFrames(raw.data)[0]!);
      t.is(reply.kind, 'error');
      t.like(reply.kind === 'error' ? reply.error : {}, {
        code: 'NOT_LEADER',
        leaderHint: { nodeId: leaderNodeId, clientAddr: leader.clientAddr },
      });
      const pinned = new WalrusClient({ nodes: [other.clientAddr], retryCountMax: 0 });
      t.teardown(() => pinned.close());
      // Without the option the same node forwards; through the cluster client, appends land in order.
      t.is(
        (await pinned.request({ op: 'append', topic: 'direct', records: [{ value: Buffer.from('a') }] }))
          .firstOffset,
        0,
      );
      t.is((await admin.append('direct', [{ value: Buffer.from('b') }])).firstOffset, 1);
      const read = await admin.read('direct', 0);
      t.deepEqual(
        read.records.map((r) => r.value.toString()),
        ['a', 'b'],
        'the redirected append was not applied',
      );
    });
  },
);

test.serial(
  'rollover with a tiny WALRUS_MAX_SEGMENT_ENTRIES moves segment leadership round-robin; reads cross nodes',
  async (t) => {
    await withCluster(
      t,
      { nodeCount: 3, env: { WALRUS_MAX_SEGMENT_ENTRIES: '4', WALRUS_MONITOR_CHECK_MS: '100' } },
      async (cluster) => {
        await converged(cluster, [1, 2, 3]);
        await text(cluster.nodes[0]!.clientAddr, 'REGISTER roll');
        const total = 30;
        for (let i = 0; i < total; i++) {
          const [r] = await eventually(`PUT ${i}`, async () => {
            const reply = await text(cluster.nodes[i % 3]!.clientAddr, `PUT roll r${i}`);
            return reply[0] === 'OK' ? reply : undefined;
          });
          t.is(r, 'OK');
        }
        const [s] = await text(cluster.nodes[2]!.clientAddr, 'STATE roll');
        const state = JSON.parse(s!) as {
          current_segment: number;
          sealed_segments: Record<string, number>;
          segment_leaders: Record<string, number>;
        };
        t.true(state.current_segment >= 7, `segments: ${state.current_segment}`);
        t.deepEqual(Object.values(state.sealed_segments).reduce((a, b) => a + b, 0) <= total, true);
        t.true(
          Object.values(state.sealed_segments).every((count) => count === 4),
          JSON.stringify(state.sealed_segments),
        );
        t.is(new Set(Object.values(state.segment_leaders)).size, 3, 'every node led some segment');
        const got: string[] = [];
        for (let i = 0; i <= total; i++)
          got.push((await text(cluster.nodes[i % 3]!.clientAddr, 'GET roll'))[0]!);
        t.deepEqual(got, [...Array.from({ length: total }, (_, i) => `OK r${i}`), 'EMPTY']);
      },
    );
  },
);

test.serial('a fourth node hot-joins as a learner and is promoted', async (t) => {
  await withCluster(t, { nodeCount: 3 }, async (cluster) => {
    await converged(cluster, [1, 2, 3]);
    await cluster.addNode();
    await converged(cluster, [1, 2, 3, 4]);
    const m = await metrics(cluster.nodes[3]!.clientAddr);
    t.deepEqual(m.membership_config.learners, []);
    await text(cluster.nodes[3]!.clientAddr, 'REGISTER after-join');
    t.deepEqual(await text(cluster.nodes[3]!.clientAddr, 'PUT after-join x', 'GET after-join'), [
      'OK',
      'OK x',
    ]);
  });
});

test.serial(
  'kill -9 of the Raft leader: a new leader is elected and metadata operations resume',
  async (t) => {
    await withCluster(t, { nodeCount: 3 }, async (cluster) => {
      const oldLeader = await converged(cluster, [1, 2, 3]);
      const oldTerm = (await metrics(cluster.nodes[0]!.clientAddr)).current_term;
      await cluster.kill(leaderIndex(cluster, oldLeader), 'SIGKILL');
      const survivors = cluster.nodes.filter((n) => n.spec.nodeId !== oldLeader);
      const newLeader = await eventually('a new leader', async () => {
        const ms = await Promise.all(survivors.map((n) => metrics(n.clientAddr)));
        const l = ms[0]!.current_leader;
        return l !== null && l !== oldLeader && ms.every((m) => m.current_leader === l) ? l : undefined;
      });
      t.not(newLeader, oldLeader);
      t.true((await metrics(survivors[0]!.clientAddr)).current_term > oldTerm);
      const created = await eventually('REGISTER after failover', async () => {
        const [r] = await text(survivors[0]!.clientAddr, 'REGISTER after-failover');
        return r === 'OK' ? r : undefined;
      });
      t.is(created, 'OK');
      // The killed node restarts from its data directory and catches up.
      await cluster.startNode(leaderIndex(cluster, oldLeader));
      await converged(cluster, [1, 2, 3]);
      // It may take a moment to apply the entries it missed.
      const s = await eventually('the restarted node to know the new topic', async () => {
        const [r] = await text(
          cluster.nodes[leaderIndex(cluster, oldLeader)]!.clientAddr,
          'STATE after-failover',
        );
        return r?.startsWith('{') ? r : undefined;
      });
      t.regex(s, /^\{"topic":"after-failover"/);
    });
  },
);

test.serial('every node restarts from its data directory with no metadata lost', async (t) => {
  await withCluster(t, { nodeCount: 3 }, async (cluster) => {
    await converged(cluster, [1, 2, 3]);
    for (const name of ['r1', 'r2', 'r3']) await text(cluster.nodes[0]!.clientAddr, `REGISTER ${name}`);
    await text(cluster.nodes[1]!.clientAddr, 'PUT r1 kept', 'PUT r1 also kept', 'GET r1');
    const before = await text(cluster.nodes[2]!.clientAddr, 'STATE r1', 'STATE r2', 'STATE r3');
    await cluster.stop();
    for (let i = 0; i < 3; i++) await cluster.startNode(i);
    await converged(cluster, [1, 2, 3]);
    const after = await eventually('states after restart', async () => {
      const r = await text(cluster.nodes[2]!.clientAddr, 'STATE r1', 'STATE r2', 'STATE r3');
      return r.every((x) => x.startsWith('{')) ? r : undefined;
    });
    // Every segment known before is still there with its leader; a leader that restarted with its
    // segment open recovers it (seal at the quorum's end) and a new segment may follow.
    after.forEach((x, i) => {
      const leadersAfter = JSON.parse(x).segment_leaders as Record<string, number>;
      const leadersBefore = JSON.parse(before[i]!).segment_leaders as Record<string, number>;
      for (const [id, leader] of Object.entries(leadersBefore))
        t.is(leadersAfter[id], leader, `segment ${id}`);
    });
    const [next] = await eventually('GET after restart', async () => {
      const r = await text(cluster.nodes[0]!.clientAddr, 'GET r1');
      return r[0]!.startsWith('OK') ? r : undefined;
    });
    t.is(next, 'OK also kept', 'the shared cursor neither replays nor skips across a full restart');
  });
});

test.serial(
  'a wrong cluster secret is refused; a stranger on the raft port gets UNAUTHENTICATED',
  async (t) => {
    await withCluster(
      t,
      { nodeCount: 2, env: { WALRUS_CLUSTER_SECRET: 'right-secret' } },
      async (cluster) => {
        await converged(cluster, [1, 2]);
        const index = await cluster.addNode({
          env: { WALRUS_CLUSTER_SECRET: 'wrong-secret' },
          waitForListen: false,
        });
        await new Promise((r) => setTimeout(r, 3000));
        const m = await metrics(cluster.nodes[0]!.clientAddr);
        t.false(
          m.membership_config.nodes.includes(cluster.nodes[index]!.spec.nodeId),
          'the node with the wrong secret did not join',
        );
        const stranger = await rawExchange(portOf(cluster.nodes[0]!.raftAddr), [frame('METRICS')], {
          quietMs: 2000,
        });
        t.true(stranger.closed);
        t.regex(
          splitFrames(stranger.data)
            .map((f) => f.toString('latin1'))
            .join(' '),
          /UNAUTHENTICATED/,
        );
      },
    );
  },
);

test.serial('walrus-cli remove-node removes a follower and then the leader itself', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const { cliBin } = await import('../helpers/local-cluster.js');
  await withCluster(t, { nodeCount: 4 }, async (cluster) => {
    const leader = await converged(cluster, [1, 2, 3, 4]);
    const follower = [1, 2, 3, 4].find((id) => id !== leader)!;
    const cli = (addr: string, ...args: string[]) =>
      spawnSync(process.execPath, [cliBin, '--addr', addr, ...args], { encoding: 'utf8', timeout: 30_000 });
    const viaLeader = cluster.nodes[leaderIndex(cluster, leader)]!.clientAddr;
    const r1 = cli(viaLeader, 'remove-node', String(follower));
    t.is(r1.status, 0, r1.stderr);
    t.regex(r1.stdout, new RegExp(`OK node ${follower} removed`));
    await cluster.kill(leaderIndex(cluster, follower), 'SIGTERM');
    const rest = [1, 2, 3, 4].filter((id) => id !== follower);
    await converged(cluster, rest, [follower]);
    // Remove the leader through another node: the request reaches the leader, which steps down.
    const other = rest.find((id) => id !== leader)!;
    const r2 = cli(cluster.nodes[leaderIndex(cluster, other)]!.clientAddr, 'remove-node', String(leader));
    t.is(r2.status, 0, r2.stderr);
    const remaining = rest.filter((id) => id !== leader);
    await cluster.kill(leaderIndex(cluster, leader), 'SIGTERM');
    const newLeader = await converged(cluster, remaining, [follower, leader]);
    t.true(remaining.includes(newLeader));
    const addr = cluster.nodes[leaderIndex(cluster, remaining[0]!)]!.clientAddr;
    t.deepEqual(await text(addr, 'REGISTER after-removal', 'PUT after-removal ok', 'GET after-removal'), [
      'OK',
      'OK',
      'OK ok',
    ]);
    t.is(cli(addr, 'remove-node', '99').stdout.trim(), 'OK node 99 was not a member');
  });
});

test.serial(
  'an idempotent producer keeps its sequence across rollovers that move segment leadership',
  async (t) => {
    await withCluster(t, { nodeCount: 3, env: { WALRUS_MAX_SEGMENT_ENTRIES: '3' } }, async (cluster) => {
      await converged(cluster, [1, 2, 3]);
      const client = new WalrusClient({ nodes: cluster.clientAddrs, retryCountMax: 8 });
      try {
        await client.createTopic('idem');
        for (let seq = 0; seq < 12; seq++) {
          const record = [{ value: Buffer.from(`p${seq}`) }];
          const first = await client.append('idem', record, { producerId: 'p', producerSeq: seq });
          const retry = await client.append('idem', record, { producerId: 'p', producerSeq: seq });
          t.is(retry.firstOffset, first.firstOffset, `seq ${seq} retried`);
          t.true(retry.duplicate);
        }
        const info = await client.describeTopic('idem');
        t.is(info.endOffset, 12, 'no batch was appended twice');
        t.true(new Set(info.segments.map((s) => s.leaderNodeId)).size > 1, 'leadership moved');
      } finally {
        await client.close();
      }
    });
  },
);

test.serial(
  'offsetForTimestamp spans segments led by every node: any node answers the first offset at or after a time',
  async (t) => {
    await withCluster(t, { nodeCount: 3, env: { WALRUS_MAX_SEGMENT_ENTRIES: '3' } }, async (cluster) => {
      await converged(cluster, [1, 2, 3]);
      const writer = new WalrusClient({ nodes: cluster.clientAddrs, retryCountMax: 8 });
      const total = 12;
      try {
        await writer.createTopic('times');
        for (let i = 0; i < total; i++) {
          await writer.append('times', [{ value: Buffer.from(`t${i}`) }]);
          await new Promise((resolve) => setTimeout(resolve, 3)); // distinct timestamps
        }
        const info = await writer.describeTopic('times');
        t.true(new Set(info.segments.map((s) => s.leaderNodeId)).size >= 2, 'segments on several nodes');
        const stamps: number[] = [];
        for (let offset = 0; offset < total; ) {
          const reply = await writer.read('times', offset, { recordCountMax: total, byteCountMax: 1 << 20 });
          for (const r of reply.records) stamps[r.offset] = r.timestampMs;
          offset = reply.nextOffset;
        }
        t.is(stamps.length, total);
        for (const addr of cluster.clientAddrs) {
          // A client bound to one node: that node answers, asking the others as it must.
          const one = new WalrusClient({ nodes: [addr] });
          try {
            for (let i = 0; i < total; i++) {
              const expected = stamps.findIndex((s) => s >= stamps[i]!);
              t.is(await one.offsetForTimestamp('times', stamps[i]!), expected, `${addr}: record ${i}`);
              t.is(
                await one.offsetForTimestamp('times', stamps[i]! - 1),
                stamps.findIndex((s) => s >= stamps[i]! - 1),
              );
            }
            t.is(await one.offsetForTimestamp('times', 0), 0, `${addr}: before everything`);
            t.is(
              await one.offsetForTimestamp('times', stamps[total - 1]! + 1),
              total,
              `${addr}: after everything`,
            );
          } finally {
            await one.close();
          }
        }
      } finally {
        await writer.close();
      }
    });
  },
);

test.serial(
  'a topic created on the leader is there at once on every other node (read-your-writes)',
  async (t) => {
    await withCluster(t, { nodeCount: 3 }, async (cluster) => {
      const leader = await converged(cluster, [1, 2, 3]);
      const leaderAddr = cluster.nodes[leaderIndex(cluster, leader)]!.clientAddr;
      const others = cluster.nodes.filter((n) => n.spec.nodeId !== leader);
      for (let i = 0; i < 80; i++) {
        t.deepEqual(await text(leaderAddr, `REGISTER ryw${i}`), ['OK']);
        const states = await Promise.all(others.map((n) => text(n.clientAddr, `STATE ryw${i}`)));
        for (const [state] of states)
          t.true(state!.startsWith('{'), `STATE right after REGISTER ${i}: ${state}`);
      }
      // A follower paused while the topic is made finds, when it resumes, the STATE request and the
      // leader's entries waiting together: it must not answer from the metadata it had.
      const paused = others[1]!;
      for (let i = 0; i < 5; i++) {
        paused.process!.kill('SIGSTOP');
        try {
          t.deepEqual(await text(leaderAddr, `REGISTER paused${i}`), ['OK']);
          const asked = text(paused.clientAddr, `STATE paused${i}`, `PUT paused${i} x`);
          await new Promise((resolve) => setTimeout(resolve, 100));
          paused.process!.kill('SIGCONT');
          const [state, put] = await asked;
          t.true(state!.startsWith('{'), `STATE on a resumed follower ${i}: ${state}`);
          t.is(put, 'OK');
        } finally {
          paused.process!.kill('SIGCONT');
        }
      }
      const follower = others[0]!;
      for (let i = 0; i < 40; i++) {
        const replies = await text(follower.clientAddr, `REGISTER via${i}`, `STATE via${i}`, `PUT via${i} x`);
        t.deepEqual(replies.slice(0, 1), ['OK']);
        t.true(replies[1]!.startsWith('{'), `STATE right after REGISTER via a follower ${i}: ${replies[1]}`);
        t.is(replies[2], 'OK');
      }
    });
  },
);
