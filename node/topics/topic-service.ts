/**
 * The topic service of a node: one object over the topic table that the server calls, built from
 * its parts (each in its own file): topic administration, the appender (appends, rollover), the
 * reader (reads, long polls, timestamps), consumers (cursors) and the reconciler (start-up, applied
 * commands, snapshot installs, the monitor's per-node work).
 */
import type { Logger } from '../log.js';
import type { MetaCommand, MetadataState, Retention } from '../metadata/metadata-state.js';
import { type Scheduler, realScheduler } from '../scheduler.js';
import type { Wal } from '../wal/index.js';
import { Appender } from './appender.js';
import { Consumers } from './consumers.js';
import type { ClusterView, MetadataService } from './ports.js';
import { Reader } from './reader.js';
import { Reconciler } from './reconciler.js';
import { TopicAdmin } from './topic-admin.js';
import type { TopicContext } from './topic-context.js';
import { TopicTable } from './topic-table.js';

export interface TopicServiceOptions {
  readonly nodeId: number;
  readonly wal: Wal;
  readonly meta: MetadataService;
  readonly cluster: ClusterView;
  readonly segmentEntryCountMax: number;
  readonly retentionDefault: Retention;
  readonly nowMs: () => number;
  readonly logger: Logger;
  /** Timers of long polls. Default the real ones (the whole-node simulator passes its own). */
  readonly scheduler?: Scheduler;
}

export class TopicService {
  readonly admin: TopicAdmin;
  readonly appender: Appender;
  readonly reader: Reader;
  readonly consumers: Consumers;
  readonly reconciler: Reconciler;
  private readonly ctx: TopicContext;

  constructor(options: TopicServiceOptions) {
    this.ctx = {
      ...options,
      scheduler: options.scheduler ?? realScheduler,
      table: new TopicTable(options.nodeId, options.meta),
    };
    this.reader = new Reader(this.ctx);
    this.appender = new Appender(this.ctx);
    this.admin = new TopicAdmin(this.ctx, this.reader);
    this.consumers = new Consumers(this.ctx, this.reader);
    this.reconciler = new Reconciler(this.ctx, this.appender);
  }

  /** The metadata as applied on this node. */
  get metadata(): MetadataState {
    return this.ctx.meta.state;
  }

  recover(): Promise<void> {
    return this.reconciler.recover();
  }

  onApply(command: MetaCommand): void {
    this.reconciler.onApply(command);
  }

  /** Storage figures that METRICS adds beside the Raft fields. */
  storageStats(): Record<string, number> {
    return { topics: this.ctx.meta.state.topics.size, ...this.ctx.wal.stats() };
  }

  /** Wakes every long poll and waits for rollovers in flight (shutdown). */
  async close(): Promise<void> {
    for (const rt of this.ctx.table.values()) {
      for (const w of rt.waiters) w.wake();
      if (rt.rolling) await rt.rolling;
    }
  }
}
