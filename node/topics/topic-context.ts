/**
 * What every part of the topic service shares: this node's id, its WAL, the metadata log, the
 * cluster view, the topic table, the settings and the logger. One object so the parts are built
 * from the same things and a test builds them once.
 */
import type { Logger } from '../log.js';
import type { Retention } from '../metadata/metadata-state.js';
import { type Scheduler, sleep } from '../scheduler.js';
import type { Wal } from '../wal/index.js';
import type { ClusterView, MetadataService } from './ports.js';
import { type TopicTable, toWalrusError } from './topic-table.js';

export interface TopicContext {
  readonly nodeId: number;
  readonly wal: Wal;
  readonly meta: MetadataService;
  readonly cluster: ClusterView;
  readonly table: TopicTable;
  /** Records per segment before a rollover (WALRUS_MAX_SEGMENT_ENTRIES). */
  readonly segmentEntryCountMax: number;
  readonly retentionDefault: Retention;
  readonly nowMs: () => number;
  readonly logger: Logger;
  /** Timers (long polls). */
  readonly scheduler: Scheduler;
}

/** Commits a metadata command, turning any failure into a typed error; resolves with its index. */
export async function proposeOrThrow(
  ctx: TopicContext,
  command: Parameters<TopicContext['meta']['propose']>[0],
): Promise<number> {
  try {
    return await ctx.meta.propose(command);
  } catch (error) {
    throw toWalrusError(error);
  }
}

/**
 * Catches up with the Raft leader's applied metadata (any node can), retrying with doubling
 * backoff up to `attemptCountMax` tries; false when every try failed. Start-up's checks that the
 * metadata here is current (topics/reader.ts, topics/reconciler.ts) share it.
 */
export async function catchUpWithLeaderRetrying(
  ctx: TopicContext,
  retry: { readonly attemptCountMax: number; readonly retryMsMin: number; readonly retryMsMax: number },
): Promise<boolean> {
  let delayMs = retry.retryMsMin;
  for (let attempt = 0; attempt < retry.attemptCountMax; attempt++) {
    try {
      await ctx.cluster.catchUpWithLeader();
      return true;
    } catch {
      if (attempt + 1 >= retry.attemptCountMax) break;
      await sleep(ctx.scheduler, delayMs);
      delayMs = Math.min(delayMs * 2, retry.retryMsMax);
    }
  }
  return false;
}
