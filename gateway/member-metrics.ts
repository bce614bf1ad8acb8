/**
 * Every member's own view for GET /v1/cluster: the node that answers a request knows the
 * membership, but only its own disk, and only the Raft leader knows how far each member lags. An
 * operator looking for the node whose disk is full, or the one that is down, needs all of them, so
 * the gateway asks each member's METRICS at its client address (from the membership), at once,
 * each bounded by `memberMetricsLimits.timeoutMs`; a member that does not answer is shown as
 * unreachable with the reason. Lag comes from the leader's replication progress.
 *
 * A member gets a single-node client (no routing, no retries) from `connect`, kept for the next
 * request; at most `clientCountMax` are kept (the oldest is closed first).
 */
import type { Upstream } from './upstream.js';

export const memberMetricsLimits = {
  /** Members asked per request; a larger membership shows the rest as not asked. */
  memberCountMax: 64,
  /** A member's METRICS must answer within this. */
  timeoutMs: 1_000,
  /** Single-node clients kept between requests. */
  clientCountMax: 64,
} as const;

export interface MemberClient extends Upstream {
  close(): Promise<void>;
}

/** One member as /v1/cluster shows it (openapi.yaml `ClusterMember`). */
export interface MemberView {
  readonly nodeId: number;
  readonly role: 'leader' | 'follower' | 'learner';
  readonly clientAddress: string | null;
  readonly reachable: boolean;
  /** Why it is not reachable (null when it is). */
  readonly error: string | null;
  /** Its own Raft state, term and applied index, as it reports them. */
  readonly state: string | null;
  readonly term: number | null;
  readonly lastApplied: number | null;
  /** Raft log entries behind the leader (from the leader's replication progress; null: unknown). */
  readonly lagEntries: number | null;
  readonly diskFreeBytes: number | null;
  readonly diskReserveBytes: number | null;
  readonly diskFull: boolean | null;
}

type Json = Record<string, unknown>;

const numberOrNull = (v: unknown): number | null => (typeof v === 'number' ? v : null);

function membershipOf(metrics: Json): {
  ids: number[];
  learners: Set<number>;
  clientAddr: Map<number, string>;
} {
  const membership = (metrics['membership_config'] ?? {}) as Json;
  const voters = Array.isArray(membership['voters']) ? (membership['voters'] as unknown[]) : [];
  const learners = Array.isArray(membership['learners']) ? (membership['learners'] as unknown[]) : [];
  const nodes = ((membership['membership'] as Json | undefined)?.['nodes'] ?? {}) as Record<string, Json>;
  const clientAddr = new Map<number, string>();
  for (const [id, info] of Object.entries(nodes)) {
    const addr = info?.['client_addr'];
    if (typeof addr === 'string' && addr !== '') clientAddr.set(Number(id), addr);
  }
  const ids = [...new Set([...voters, ...learners, ...clientAddr.keys()].map(Number))]
    .filter((id) => Number.isSafeInteger(id) && id > 0)
    .sort((a, b) => a - b);
  return { ids, learners: new Set(learners.map(Number)), clientAddr };
}

export class MemberMetrics {
  private readonly clients = new Map<string, MemberClient>();

  constructor(private readonly connect: (clientAddress: string) => MemberClient) {}

  /** The members named by `answering` (the METRICS JSON of the node that answered), each asked. */
  async members(answering: Json): Promise<MemberView[]> {
    const { ids, learners, clientAddr } = membershipOf(answering);
    const asked = ids.slice(0, memberMetricsLimits.memberCountMax);
    const own = await Promise.all(
      asked.map(async (id): Promise<{ metrics: Json | null; error: string | null }> => {
        if (id === answering['id']) return { metrics: answering, error: null };
        const addr = clientAddr.get(id);
        if (addr === undefined) return { metrics: null, error: 'no client address in the membership' };
        try {
          const reply = await this.client(addr).request(
            { op: 'metrics' },
            { timeoutMs: memberMetricsLimits.timeoutMs },
          );
          return { metrics: reply.metrics as Json, error: null };
        } catch (error) {
          return { metrics: null, error: (error as Error).message };
        }
      }),
    );
    const leaderIndex = own.findIndex((o) => o.metrics?.['state'] === 'Leader');
    const leader = leaderIndex < 0 ? null : own[leaderIndex]!.metrics!;
    const leaderId = numberOrNull(leader?.['id']) ?? numberOrNull(answering['current_leader']);
    const replication = (leader?.['replication'] ?? null) as Record<string, Json | null> | null;
    const leaderLastIndex = numberOrNull(leader?.['last_log_index']);
    return ids.map((id, i): MemberView => {
      const m = i < asked.length ? own[i]!.metrics : null;
      const storage = (m?.['storage'] ?? {}) as Json;
      const match = numberOrNull(replication?.[String(id)]?.['match_index']);
      return {
        nodeId: id,
        role: id === leaderId ? 'leader' : learners.has(id) ? 'learner' : 'follower',
        clientAddress: clientAddr.get(id) ?? null,
        reachable: m !== null,
        error:
          i < asked.length
            ? own[i]!.error
            : `not asked (more than ${memberMetricsLimits.memberCountMax} members)`,
        state: typeof m?.['state'] === 'string' ? (m['state'] as string) : null,
        term: numberOrNull(m?.['current_term']),
        lastApplied: numberOrNull(m?.['last_applied']),
        lagEntries:
          id === leaderId && leaderLastIndex !== null
            ? 0
            : match !== null && leaderLastIndex !== null
              ? Math.max(0, leaderLastIndex - match)
              : null,
        diskFreeBytes: numberOrNull(storage['disk_free_bytes']),
        diskReserveBytes: numberOrNull(storage['disk_reserve_bytes']),
        diskFull: typeof storage['disk_full'] === 'boolean' ? (storage['disk_full'] as boolean) : null,
      };
    });
  }

  async close(): Promise<void> {
    const clients = [...this.clients.values()];
    this.clients.clear();
    await Promise.all(clients.map((c) => c.close().catch(() => {})));
  }

  private client(addr: string): MemberClient {
    let client = this.clients.get(addr);
    if (client === undefined) {
      if (this.clients.size >= memberMetricsLimits.clientCountMax) {
        const [oldestAddr, oldest] = this.clients.entries().next().value as [string, MemberClient];
        this.clients.delete(oldestAddr);
        void oldest.close().catch(() => {});
      }
      client = this.connect(addr);
      this.clients.set(addr, client);
    }
    return client;
  }
}
