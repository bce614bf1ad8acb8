/**
 * walrus-cli's operator commands (walrus-cli.ts parses the command line and calls these):
 * `status` (members, roles, term, leader, each member's replication lag as the leader sees it),
 * `topics` (segments, leaders, replicas, offsets, retention), `tail` (follow a topic by long
 * polls) and `transfer-leader` (over the leader's peer port, like remove-node). They speak the
 * binary protocol through the cluster client, so any node's client address will do. Output is a
 * plain table for people, or one JSON document with --json for scripts.
 */
import { type NodeAccess, transferLeaderAsAdmin } from '../client/admin-client.js';
import { WalrusClient } from '../client/walrus-client.js';
import type { TopicInfo } from '../protocol/messages.js';

export const cliOperatorLimits = {
  /** Topics `topics` describes one by one for live offsets; beyond, the metadata's offsets are shown. */
  topicsDescribedMax: 100,
  /** Long-poll wait of one `tail` read. */
  tailWaitMs: 5_000,
  /** Records one `tail` read asks for. */
  tailReadRecordCountMax: 500,
} as const;

export interface CliContext {
  readonly addr: string;
  readonly timeoutMs: number;
  readonly clusterSecret: string | null;
  /** Token and TLS for a secured cluster (--token-file, --tls-ca/--tls-cert/--tls-key). */
  readonly access: NodeAccess;
  readonly json: boolean;
  readonly out: (text: string) => void;
}

interface MetricsJson {
  id?: number;
  state?: string;
  current_term?: number;
  current_leader?: number | null;
  last_log_index?: number;
  last_applied?: number;
  membership_config?: {
    voters?: number[];
    learners?: number[];
    membership?: { nodes?: Record<string, { addr?: string; client_addr?: string }> };
  };
  replication?: Record<string, { match_index?: number }>;
  storage?: { disk_free_bytes?: number; disk_full?: boolean };
}

export interface MemberStatus {
  readonly nodeId: number;
  readonly role: 'leader' | 'follower' | 'learner';
  readonly raftAddr: string | null;
  readonly clientAddr: string | null;
  /** Raft log entries the member lacks, as the leader sees it; null when the leader did not answer. */
  readonly lag: number | null;
}

export interface ClusterStatus {
  readonly leader: number | null;
  readonly term: number | null;
  readonly commitIndex: number | null;
  readonly members: readonly MemberStatus[];
}

/** Pads columns for a terminal (no dependency for a table this small). */
export function table(header: readonly string[], rows: readonly (readonly unknown[])[]): string {
  const text = [header, ...rows.map((r) => r.map((v) => (v === null || v === undefined ? '-' : String(v))))];
  const widths = header.map((_, i) => Math.max(...text.map((r) => (r[i] as string).length)));
  return text
    .map((r) =>
      r
        .map((v, i) => (v as string).padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

async function metricsOf(addr: string, timeoutMs: number, access: NodeAccess): Promise<MetricsJson> {
  const client = new WalrusClient({ nodes: [addr], requestTimeoutMs: timeoutMs, ...access });
  try {
    return (await client.metrics()) as MetricsJson;
  } finally {
    await client.close();
  }
}

/** Members and roles from any node's METRICS; lag from the leader's (asked at its client address). */
export async function clusterStatus(
  addr: string,
  timeoutMs: number,
  access: NodeAccess = {},
): Promise<ClusterStatus> {
  const here = await metricsOf(addr, timeoutMs, access);
  const leader = here.current_leader ?? null;
  const nodes = here.membership_config?.membership?.nodes ?? {};
  let view = here;
  if (leader !== null && here.id !== leader) {
    const leaderAddr = nodes[String(leader)]?.client_addr;
    view = leaderAddr === undefined ? {} : await metricsOf(leaderAddr, timeoutMs, access).catch(() => ({}));
  }
  const voters = here.membership_config?.voters ?? [];
  const learners = here.membership_config?.learners ?? [];
  const ids = [...new Set([...voters, ...learners])].sort((a, b) => a - b);
  const members = ids.map((nodeId): MemberStatus => {
    const match = view.state === 'Leader' ? view.replication?.[String(nodeId)]?.match_index : undefined;
    return {
      nodeId,
      role: nodeId === leader ? 'leader' : learners.includes(nodeId) ? 'learner' : 'follower',
      raftAddr: nodes[String(nodeId)]?.addr ?? null,
      clientAddr: nodes[String(nodeId)]?.client_addr ?? null,
      lag: match === undefined || view.last_log_index === undefined ? null : view.last_log_index - match,
    };
  });
  return {
    leader,
    term: here.current_term ?? null,
    commitIndex: view.last_log_index ?? null,
    members,
  };
}

export async function statusCommand(ctx: CliContext): Promise<number> {
  const status = await clusterStatus(ctx.addr, ctx.timeoutMs, ctx.access);
  if (ctx.json) {
    ctx.out(JSON.stringify(status, null, 2));
    return 0;
  }
  ctx.out(
    `leader: ${status.leader === null ? 'none (an election is under way, or no quorum)' : `node ${status.leader}`}  term: ${status.term ?? '-'}  log index: ${status.commitIndex ?? '-'}`,
  );
  ctx.out(
    table(
      ['NODE', 'ROLE', 'RAFT', 'CLIENT', 'LAG'],
      status.members.map((m) => [m.nodeId, m.role, m.raftAddr, m.clientAddr, m.lag]),
    ),
  );
  return status.leader === null ? 1 : 0;
}

function retentionText(t: TopicInfo): string {
  const parts: string[] = [];
  if (t.retention.retentionMs !== null) parts.push(`${t.retention.retentionMs}ms`);
  if (t.retention.retentionBytes !== null) parts.push(`${t.retention.retentionBytes}B`);
  return parts.length === 0 ? 'all' : parts.join(',');
}

export async function topicsCommand(ctx: CliContext): Promise<number> {
  const client = new WalrusClient({ nodes: [ctx.addr], requestTimeoutMs: ctx.timeoutMs, ...ctx.access });
  try {
    const listed = await client.listTopics();
    // The list holds the metadata's view; the active segment's leader knows the live end offset.
    const topics: TopicInfo[] = [];
    for (const [i, t] of listed.entries())
      topics.push(i < cliOperatorLimits.topicsDescribedMax ? await client.describeTopic(t.name) : t);
    if (ctx.json) {
      ctx.out(JSON.stringify({ topics }, null, 2));
      return 0;
    }
    ctx.out(
      table(
        ['TOPIC', 'OFFSETS', 'SEGMENTS', 'LEADER', 'REPLICAS', 'RF', 'UNDER-REPLICATED', 'RETENTION'],
        topics.map((t) => [
          t.name,
          `${t.startOffset}-${t.endOffset}`,
          t.segments.length,
          t.leaderNodeId,
          t.segments[t.segments.length - 1]?.replicas.join(',') ?? '',
          t.replicationFactor,
          t.underReplicatedSegmentCount,
          retentionText(t),
        ]),
      ),
    );
    return 0;
  } finally {
    await client.close();
  }
}

/**
 * Follows a topic: `from` is `start`, `end` (the default: only new records) or an offset. Prints
 * `offset<TAB>value` a record (values as UTF-8); stops after `count` records when given, or when
 * `signal` fires (Ctrl-C).
 */
export async function tailCommand(
  ctx: CliContext,
  topic: string,
  from: string,
  count: number | null,
  signal: AbortSignal,
): Promise<number> {
  const client = new WalrusClient({ nodes: [ctx.addr], requestTimeoutMs: ctx.timeoutMs, ...ctx.access });
  try {
    const info = await client.describeTopic(topic);
    let offset = from === 'start' ? info.startOffset : from === 'end' ? info.endOffset : Number(from);
    let printed = 0;
    while (!signal.aborted && (count === null || printed < count)) {
      const reply = await client
        .read(topic, offset, {
          waitMs: cliOperatorLimits.tailWaitMs,
          recordCountMax: cliOperatorLimits.tailReadRecordCountMax,
          timeoutMs: ctx.timeoutMs + cliOperatorLimits.tailWaitMs,
          signal,
        })
        .catch((error: unknown) => {
          if (signal.aborted) return null;
          throw error;
        });
      if (reply === null) break;
      for (const record of reply.records) {
        if (count !== null && printed >= count) break;
        const value = Buffer.from(record.value.buffer, record.value.byteOffset, record.value.byteLength);
        ctx.out(
          ctx.json
            ? JSON.stringify({
                offset: record.offset,
                timestamp: record.timestampMs,
                value: value.toString('utf8'),
              })
            : `${record.offset}\t${value.toString('utf8')}`,
        );
        printed++;
      }
      offset = reply.nextOffset;
    }
    return 0;
  } finally {
    await client.close();
  }
}

export async function transferLeaderCommand(ctx: CliContext, nodeId: number): Promise<number> {
  const { leaderId } = await transferLeaderAsAdmin(nodeId, {
    addr: ctx.addr,
    clusterSecret: ctx.clusterSecret,
    timeoutMs: ctx.timeoutMs,
    access: ctx.access,
  });
  ctx.out(ctx.json ? JSON.stringify({ leaderId }) : `OK node ${leaderId} is the Raft leader`);
  return 0;
}
