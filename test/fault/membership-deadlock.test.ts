/**
 * Defect 6 of issue 8 on real processes (test/helpers/netns-cluster.ts: a namespace per node,
 * nftables drops): an uncommitted "promote 4" on a cut-off Raft leader, another voter dead, must
 * not leave the cluster without a leader. Configurations take effect when applied, so the leader
 * holding the promote still counts voters {1,2,3} and wins with the third voter's vote; then the
 * survivors commit a client operation and `remove-node` of the dead voter succeeds. When
 * configurations took effect when appended (before the fix) no leader was ever elected.
 *
 * The schedule is the simulator's (test/sim/scenarios.ts), made of partitions on real links.
 * Voters {1,2,3}, leader L (node 2 or 3: learner 4 joins through node 1), voters A and B.
 * 1. L and 4 cannot reach each other while 4 joins: 4 is a learner everywhere, with an empty log
 *    and no progress known to L, so L does not promote it yet.
 * 2. Partitions are set, then L and 4 reconnect. A and B receive from L, and from each other,
 *    only packets that carry no log entry (heartbeats, votes and their answers pass); L receives
 *    no entry from A or B; 4's messages never reach A or B. L catches 4 up and appends
 *    "promote 4": it reaches 4 but neither A nor B, so it never commits. The first entry L sent
 *    them stalled that TCP stream, so they stop hearing L and elect one of themselves, X, with the
 *    other's (Y's) vote. X's first entry stalls its streams to Y and L too; it reaches only 4,
 *    where it overwrites the promote.
 * 3. X is killed and the partitions lifted (what X sent stays dropped: its kernel would still
 *    deliver the stalled entry). Survivors: L (log ends in the uncommitted promote), Y (oldest
 *    log) and 4 (a learner whose log ends in X's newer term). Effective on append, L needed 3 of
 *    {1,2,3,4} and 4 refused it (its log is newer), while Y needed L, which refused (its log is
 *    newer): no leader, ever (the test fails after 20 election timeouts). Effective on apply, L
 *    wins with Y's vote and its promote commits: the voters end as {L, Y, 4}.
 * Entries are told from the rest by IP packet length: a peer frame holding one Raft message
 * without entries is 79 bytes (u32 length + 8-byte binary header + the 67-byte message header of
 * node/metadata/raft-codec.ts), a 131-byte packet with TCP timestamps (119 without); an entry adds
 * at least 21 bytes.
 */
import test from 'ava';
import { eventually } from '../helpers/eventually.js';
import { NetnsCluster } from '../helpers/netns-cluster.js';

const tickMs = 50;
/** Long enough that L catches 4 up and promotes it (within 5 ticks) well before A and B give up on L. */
const electionTicks = 40;
const electionTimeoutMs = tickMs * electionTicks;
/** Longest IP packet that carries one peer frame of a Raft message without entries, with slack. */
const entryFreeIpLengthMax = 135;
const learner = 3;

/** The METRICS fields read here. */
interface Metrics {
  state: string;
  current_term: number;
  current_leader: number | null;
  last_log_index: number;
  last_applied: number;
  membership_config: { voters: number[]; learners: number[] };
}

/** A METRICS reply: the JSON alone (since the fix's tree) or `OK {json}` (the older build). */
function parseMetrics(reply: string | undefined): Metrics | null {
  const json = reply?.startsWith('{') ? reply : reply?.startsWith('OK {') ? reply.slice(3) : null;
  return json === null ? null : (JSON.parse(json) as Metrics);
}

async function metrics(cluster: NetnsCluster, index: number): Promise<Metrics | null> {
  const [reply] = await cluster.text(index, ['METRICS'], 1_500);
  return parseMetrics(reply);
}

function brief(index: number, m: Metrics | null): string {
  if (m === null) return `node ${index + 1}: no answer`;
  const { state, current_term, current_leader, last_log_index, last_applied, membership_config } = m;
  return (
    `node ${index + 1}: ${state} term ${current_term} leader ${current_leader} last ${last_log_index} ` +
    `applied ${last_applied} voters [${membership_config.voters}] learners [${membership_config.learners}]`
  );
}

/** Waits until voters {1,2,3} agree on one leader for which `accept` holds; returns its index. */
function agreedLeader(cluster: NetnsCluster, accept: (index: number) => boolean): Promise<number> {
  return eventually(
    'three voters agreeing on a leader',
    async () => {
      const ms = await Promise.all([0, 1, 2].map((i) => metrics(cluster, i)));
      const leader = ms[0]?.current_leader ?? null;
      if (leader === null || !accept(leader - 1)) return undefined;
      const agreed = ms.every((m) => m?.current_leader === leader && m.membership_config.voters.length === 3);
      return agreed ? leader - 1 : undefined;
    },
    20 * electionTimeoutMs,
  );
}

test.serial(
  'defect 6: an uncommitted promote on a cut-off leader and a dead voter: the survivors elect a leader, commit, and remove the dead voter',
  async (t) => {
    const cluster = await NetnsCluster.start({
      nodeCount: 4,
      startCount: 3,
      env: { WALRUS_RAFT_TICK_MS: String(tickMs), WALRUS_RAFT_ELECTION_TICKS: String(electionTicks) },
    });
    try {
      // Voters {1,2,3} led by node 2 or 3: the learner joins through node 1, which forwards. Node 1
      // is paused rather than cut off, so no TCP stream is left stalled (a dropped packet would be
      // retransmitted later, coalesced, and meet the length rules below); the election also opens
      // the peer links between nodes 2 and 3, which must exist before those rules (a handshake
      // frame is longer than they let through).
      if ((await agreedLeader(cluster, () => true)) === 0) {
        cluster.nodes[0]!.process!.kill('SIGSTOP');
        try {
          await eventually(
            'nodes 2 and 3 to elect one of themselves',
            async () => {
              const ms = await Promise.all([1, 2].map((i) => metrics(cluster, i)));
              const leader = ms[0]?.current_leader ?? null;
              return leader !== null && leader !== 1 && ms[1]?.current_leader === leader ? leader : undefined;
            },
            20 * electionTimeoutMs,
          );
        } finally {
          cluster.nodes[0]!.process!.kill('SIGCONT');
        }
      }
      const l = await agreedLeader(cluster, (i) => i !== 0);
      const [a, b] = [0, 1, 2].filter((i) => i !== l) as [number, number];

      // 1. Learner 4 joins while it and L cannot reach each other.
      const cutLearner = [cluster.drop(l, learner), cluster.drop(learner, l)];
      await cluster.startNode(learner);
      const settled = await eventually(
        'learner 4 known to every voter, every entry applied',
        async () => {
          const ms = await Promise.all([0, 1, 2].map((i) => metrics(cluster, i)));
          const last = ms[l]?.last_log_index;
          const ok = ms.every(
            (m) =>
              m !== null &&
              m.current_leader === l + 1 &&
              m.membership_config.learners.includes(learner + 1) &&
              m.last_log_index === last &&
              m.last_applied === last,
          );
          return ok ? ms[l]! : undefined;
        },
        20 * electionTimeoutMs,
      );
      const base = settled.last_log_index;
      const termOfL = settled.current_term;

      // 2. The partitions, then L and 4 reconnect.
      const entryFree = { ipLengthAbove: entryFreeIpLengthMax };
      const partitions: (() => void)[] = [];
      for (const [voter, other] of [
        [a, b],
        [b, a],
      ] as const) {
        partitions.push(
          cluster.drop(voter, l, entryFree),
          cluster.drop(l, voter, entryFree),
          cluster.drop(voter, other, entryFree),
          cluster.drop(voter, learner, { sendersLinksOnly: true }),
        );
      }
      for (const lift of cutLearner) lift();
      // L promotes 4 once caught up; A and B then lose L and elect X, whose entry reaches only 4.
      let seenOfL: Metrics | null = null;
      const elected = await eventually(
        "a new leader's entry on learner 4",
        async () => {
          const ofL = await metrics(cluster, l);
          if (ofL?.state === 'Leader') seenOfL = ofL;
          const m = await metrics(cluster, learner);
          const x = (m?.current_leader ?? 0) - 1;
          return m !== null && m.current_term > termOfL && (x === a || x === b) ? x : undefined;
        },
        20 * electionTimeoutMs,
      );
      const x = elected;
      const y = x === a ? b : a;
      const before = await Promise.all([0, 1, 2, 3].map((i) => metrics(cluster, i)));
      t.log(`L = node ${l + 1} (last seen leading: ${seenOfL === null ? '-' : brief(l, seenOfL)})`);
      t.log(
        `X = node ${x + 1}, Y = node ${y + 1}; before X dies:\n${before.map((m, i) => brief(i, m)).join('\n')}`,
      );
      t.true((before[l]?.last_log_index ?? 0) > base, 'L holds entries beyond what the voters committed');
      t.is(before[y]?.last_log_index, base, 'Y holds none of them, nor any entry of X');
      t.is(before[learner]?.last_log_index, base + 1, "4's log ends in X's one entry");

      // 3. X dies; the partitions are lifted. The kernel keeps retransmitting what the dead process
      // had sent (X's entry, stalled on its way to Y and L), so packets from X stay dropped.
      await cluster.kill(x);
      for (const survivor of [l, y, learner]) cluster.drop(survivor, x);
      for (const lift of partitions) lift();
      const liftedAt = Date.now();
      const survivors = [l, y, learner];
      let last: (Metrics | null)[] = [];
      const leader = await eventually(
        'a leader among the survivors',
        async () => {
          last = await Promise.all(survivors.map((i) => metrics(cluster, i)));
          const i = last.findIndex((m) => m?.state === 'Leader');
          return i >= 0 ? survivors[i] : undefined;
        },
        20 * electionTimeoutMs,
      ).catch((error: unknown) => {
        throw new Error(
          `${String(error)}: no leader within 20 election timeouts:\n` +
            `${last.map((m, i) => brief(survivors[i]!, m)).join('\n')}`,
        );
      });
      t.log(`node ${leader + 1} leads ${Date.now() - liftedAt} ms after the partitions were lifted`);
      t.is(leader, l, 'L, whose log is the newest among the voters, wins');

      // It commits a client operation, and removes the dead voter.
      const [made] = await eventually(
        'a topic made through the new leader',
        async () => {
          const replies = await cluster.text(leader, ['REGISTER after-deadlock'], 5_000);
          return replies[0] === 'OK' ? replies : undefined;
        },
        20 * electionTimeoutMs,
      );
      t.is(made, 'OK');
      const removal = await cluster.cli([
        '--addr',
        cluster.clientAddr(leader),
        '--timeout-ms',
        '20000',
        'remove-node',
        String(x + 1),
      ]);
      t.is(removal.code, 0, `remove-node ${x + 1}: ${removal.stdout}${removal.stderr}`);
      const voters = survivors.map((i) => i + 1).sort((p, q) => p - q);
      await eventually(
        'every survivor counting the survivors as the voters',
        async () => {
          const ms = await Promise.all(survivors.map((i) => metrics(cluster, i)));
          return ms.every((m) => JSON.stringify(m?.membership_config.voters) === JSON.stringify(voters))
            ? true
            : undefined;
        },
        20 * electionTimeoutMs,
      );
      t.pass();
    } catch (error) {
      for (const n of cluster.nodes) t.log(`--- node ${n.nodeId} ---\n${n.logTail.slice(-3000)}`);
      throw error;
    } finally {
      await cluster.destroy();
    }
  },
);
