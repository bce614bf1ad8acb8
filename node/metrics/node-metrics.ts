/**
 * The node's Prometheus registry: every figure of seed 002's dashboard and alerts, gathered at
 * scrape time from what the node already keeps (the same sources as the METRICS and STATE JSON:
 * Raft status, WAL and disk figures, topic metadata, the topic table), plus the few counters and
 * histograms kept on hot paths (requests, fsync, group commit, log lines, network bytes) by the
 * other files of this folder. docs/metrics.md lists every series.
 *
 * Series carry `node_id`; Prometheus adds `instance`. Per-topic families (active segment, end
 * offset, consumer lag, replica lag) are reported only by the node that leads the topic's active
 * segment (each topic once across the cluster) and hold at most `topicSeriesCountMax` series, those
 * with the largest value; `walrus_metrics_topic_series_dropped` says how many were left out, and
 * each family has an unlabelled total or maximum that covers every topic.
 */
import fs from 'node:fs';
import path from 'node:path';
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import type { RaftStatusForMetrics } from '../metadata/raft-node.js';
import { activeSegment, replicasOf } from '../metadata/metadata-state.js';
import type { TopicService } from '../topics/topic-service.js';
import type { FileIo } from '../storage-io/index.js';
import { timedFileIo } from './fsync-timing.js';
import { FastHistogram, type HistogramChild, latencyBucketsSeconds } from '../fast-metrics.js';
import { metricsLimits } from './limits.js';
import { LogLineCounts, logLevels } from './log-lines.js';
import { NetworkBytes } from './network-bytes.js';
import { RequestMetrics } from './request-metrics.js';

/** What the entry point gives the collectors: read at each scrape, never cached here. */
export interface NodeMetricsSources {
  readonly nodeId: number;
  /** `<data-dir>/node_<id>`: its size is measured, its file system's space read. */
  readonly nodeDir: string;
  raft(): RaftStatusForMetrics;
  /** Voters heard from within an election timeout, this node included. */
  aliveVoterCount(): number;
  /** TopicService.storageStats(): WAL counters, disk free/reserve/full, under-replicated segments. */
  storage(): Readonly<Record<string, number | boolean | null>>;
  /** Null until the topic service exists. */
  topics(): TopicService | null;
  /** Client connections and the buffered-input budget; null before the client port is bound. */
  connections(): { count: number; bufferedInputBytes: number; bufferedInputRefusals: number } | null;
  /** Topics recovered, client port bound, a Raft leader known (what /ready answers). */
  ready(): boolean;
  /** Failed TLS handshakes by listener and SIGHUP reloads (bin/node-security.ts); absent: all 0. */
  security?(): SecurityMetricsFigures;
}

/** What node-security.ts counts (structural: this folder does not import bin/). */
export interface SecurityMetricsFigures {
  readonly tlsHandshakeFailures: { readonly client: number; readonly raft: number };
  readonly reloadsSucceeded: number;
  readonly reloadsFailed: number;
  readonly lastReloadSucceeded: boolean;
}

export interface NodeMetricsOptions {
  /** Per-topic series per family (WALRUS_METRICS_TOPICS_MAX). */
  readonly topicSeriesCountMax: number;
  /** Process figures (CPU, memory, event-loop delay) as walrus_node_process_*. Default true. */
  readonly processMetrics?: boolean;
}

/** Group-commit size buckets: appends per group commit, and bytes per group commit. */
const groupCommitAppendBuckets = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096];
const groupCommitBytesBuckets = [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304, 16_777_216];

const raftStates = ['Leader', 'Follower', 'Candidate', 'Learner'] as const;

/** The `n` entries with the largest `value` (all of them when there are no more than n). */
function topN<T extends { value: number }>(items: T[], n: number): T[] {
  if (items.length <= n) return items;
  return items.sort((a, b) => b.value - a.value).slice(0, n);
}

export class NodeMetrics {
  readonly registry = new Registry();
  readonly requests: RequestMetrics;
  readonly logLines = new LogLineCounts();
  readonly network = new NetworkBytes();
  readonly fsyncSeconds: HistogramChild;
  readonly groupCommitAppends: HistogramChild;
  readonly groupCommitBytes: HistogramChild;
  private readonly monitorSeconds: FastHistogram;
  private readonly monitorFailures = new Map<string, number>();
  private rolloverCount = 0;
  private dataDirBytes: number | null = null;
  private dataDirScanAtMs = Number.NEGATIVE_INFINITY;
  private dataDirScan: Promise<void> | null = null;
  private readonly gauges = new Map<string, Gauge<string>>();
  private readonly counters = new Map<string, Counter<string>>();

  constructor(
    private readonly sources: NodeMetricsSources,
    private readonly options: NodeMetricsOptions,
  ) {
    this.registry.setDefaultLabels({ node_id: String(sources.nodeId) });
    this.requests = new RequestMetrics(this.registry);
    const r = this.registry;
    this.fsyncSeconds = new FastHistogram(
      'walrus_wal_fsync_duration_seconds',
      'fdatasync of a WAL segment file in a group commit',
      [],
      latencyBucketsSeconds,
      1,
      r,
    ).child();
    this.groupCommitAppends = new FastHistogram(
      'walrus_wal_group_commit_appends',
      'Appends made durable by one group commit',
      [],
      groupCommitAppendBuckets,
      1,
      r,
    ).child();
    this.groupCommitBytes = new FastHistogram(
      'walrus_wal_group_commit_bytes',
      'Record bytes written by one group commit',
      [],
      groupCommitBytesBuckets,
      1,
      r,
    ).child();
    this.monitorSeconds = new FastHistogram(
      'walrus_monitor_task_duration_seconds',
      "One round of a monitor task (task=topics: seals, rollovers and settling, Walrus's rollover monitor; task=controller: failover and repair; task=segments: the segment watch)",
      ['task'],
      [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 2.5, 5, 10, 30, 60],
      16,
      r,
    );
    this.defineSeries();
    if (options.processMetrics !== false)
      collectDefaultMetrics({ register: r, prefix: 'walrus_node_', eventLoopMonitoringPrecision: 20 });
  }

  private gauge(name: string, help: string, labelNames: string[] = []): void {
    this.gauges.set(name, new Gauge({ name, help, labelNames, registers: [this.registry] }));
  }

  private counter(name: string, help: string, labelNames: string[] = []): void {
    this.counters.set(name, new Counter({ name, help, labelNames, registers: [this.registry] }));
  }

  private defineSeries(): void {
    const g = this.gauge.bind(this);
    const c = this.counter.bind(this);
    g('walrus_node_info', 'Always 1; labels say what runs', ['version']);
    g(
      'walrus_node_ready',
      '1 when /ready answers 200: topics recovered, client port bound, a Raft leader known',
    );
    // Raft (seed 002: state, current_term, current_leader, last_log_index, last_applied, snapshot, replication).
    g('walrus_raft_state', '1 for the Raft role this node has now, 0 for the others', ['state']);
    g('walrus_raft_is_leader', '1 when this node is the Raft leader');
    g('walrus_raft_term', 'Current Raft term (current_term)');
    g('walrus_raft_leader_id', 'Node id of the Raft leader this node knows (current_leader); 0: none');
    g('walrus_raft_last_log_index', 'Index of the last entry in the Raft log (last_log_index)');
    g('walrus_raft_applied_index', 'Index of the last entry applied to the state machine (last_applied)');
    g('walrus_raft_snapshot_index', 'Index of the last snapshot (0: none yet)');
    g('walrus_raft_snapshot_term', 'Term of the last snapshot (0: none yet)');
    g('walrus_raft_voters', 'Voting members (membership_config.voters)');
    g('walrus_raft_learners', 'Learners (membership_config.learners)');
    g('walrus_raft_alive_voters', 'Voters this node heard from within an election timeout, itself included');
    g('walrus_raft_quorum_ok', '1 when the alive voters make a quorum');
    g(
      'walrus_raft_follower_lag_entries',
      'Leader only: Raft log entries a member lacks (last_log_index - match_index)',
      ['follower'],
    );
    g('walrus_raft_follower_last_ack_age_seconds', 'Leader only: time since a member last answered', [
      'follower',
    ]);
    g('walrus_raft_quorum_ack_age_seconds', 'Leader only: time since a quorum of voters last answered');
    c(
      'walrus_raft_snapshot_transfers_total',
      'Chunked snapshot transfer events (sends_started, receives_completed, ...)',
      ['event'],
    );
    c('walrus_raft_snapshot_sent_bytes_total', 'Snapshot bytes sent to members');
    // Topics and segments (seed 002: STATE's current_segment, segment_leaders; rollovers).
    g('walrus_topics', 'Topics in the metadata');
    g(
      'walrus_topic_active_segment_id',
      'Active segment id per topic (reported by its leader; top N by end offset)',
      ['topic'],
    );
    g('walrus_topic_end_offset', 'Acknowledged end offset per topic (reported by its leader; top N)', [
      'topic',
    ]);
    g('walrus_segments_led', 'Segments whose leader is this node, by state (active, sealed)', ['state']);
    g('walrus_segment_replicas', 'Segments with a copy on this node (leader or follower)');
    c(
      'walrus_segment_rollovers_total',
      'Segments sealed (rollovers, recoveries) as applied by this node: the whole cluster, seen from here',
    );
    g(
      'walrus_segments_under_replicated',
      'Segments with a copy on a node that is not a voter or not reachable from this node',
    );
    g('walrus_topics_unwritable', 'Topics whose active segment cannot take a write as seen from here');
    g('walrus_metrics_topic_series_dropped', 'Per-topic series left out of this scrape by the top-N bound', [
      'family',
    ]);
    // Replication of segment data.
    g(
      'walrus_replica_lag_records',
      'Records a follower replica of an active segment this node leads has yet to make durable (top N)',
      ['topic', 'follower'],
    );
    g('walrus_replica_max_lag_records', 'Largest replica lag over every active segment this node leads');
    // Consumers.
    g('walrus_consumer_lag_records', 'Records between a consumer cursor and its topic end (top N)', [
      'topic',
      'consumer',
    ]);
    g(
      'walrus_consumer_max_lag_records',
      'Largest consumer lag over every topic whose active segment this node leads',
    );
    g('walrus_consumers', 'Consumer cursors on topics whose active segment this node leads');
    // WAL and disk.
    c('walrus_wal_appends_total', 'Appends the WAL made durable (one append may hold many records)');
    c('walrus_wal_records_total', 'Records the WAL made durable');
    c('walrus_wal_written_bytes_total', 'Bytes the WAL wrote');
    c('walrus_wal_fsyncs_total', 'fdatasync calls of group commits');
    c('walrus_wal_group_commits_total', 'Group commits');
    c('walrus_wal_corrupt_records_total', 'Records found corrupt on read or recovery');
    g('walrus_disk_total_bytes', "Size of the data directory's file system");
    g('walrus_disk_free_bytes', "Bytes available to the node on the data directory's file system");
    g('walrus_disk_reserve_bytes', 'Bytes kept free: appends get DISK_FULL below it');
    g('walrus_disk_full', '1 while appends are refused with DISK_FULL');
    g('walrus_data_dir_bytes', "Size of this node's data directory (measured at most once a minute)");
    // Network, connections, logs, monitor.
    c(
      'walrus_network_received_bytes_total',
      'Bytes received, by port (client, raft, admin; peer_out: connections this node opened)',
      ['port'],
    );
    c(
      'walrus_network_sent_bytes_total',
      'Bytes sent, by port (client, raft, admin; peer_out: connections this node opened)',
      ['port'],
    );
    g('walrus_client_connections', 'Open client-port connections');
    g('walrus_buffered_input_bytes', 'Bytes held by the node-wide buffered-input budget');
    c(
      'walrus_buffered_input_refusals_total',
      'Frames refused BUSY because the buffered-input budget was spent',
    );
    c('walrus_log_lines_total', 'Log lines written, by level', ['level']);
    c(
      'walrus_tls_handshake_failures_total',
      'TLS handshakes refused, by listener (client, raft): plaintext clients, untrusted or expired certificates, timeouts; 0 without TLS',
      ['listener'],
    );
    c(
      'walrus_config_reloads_total',
      'SIGHUP reloads of the TLS files and client tokens, by result (success, failure: nothing was replaced)',
      ['result'],
    );
    g(
      'walrus_config_last_reload_successful',
      '0 after a failed SIGHUP reload until one succeeds (the node serves its previous material); 1 otherwise',
    );
    c('walrus_monitor_task_failures_total', 'Monitor task rounds that failed, by task', ['task']);
  }

  private setGauge(name: string, value: number, labels?: Record<string, string>): void {
    const gauge = this.gauges.get(name)!;
    if (labels === undefined) gauge.set(value);
    else gauge.set(labels, value);
  }

  private setCounter(name: string, value: number, labels?: Record<string, string>): void {
    const counter = this.counters.get(name)!;
    if (labels === undefined) counter.inc(value);
    else counter.inc(labels, value);
  }

  /** What the WAL takes to feed the fsync and group-commit histograms (WalOptions). */
  walOptions(io: FileIo): {
    fileIo: FileIo;
    onGroupCommit: (appendCount: number, byteCount: number) => void;
  } {
    return {
      fileIo: timedFileIo(io, this.fsyncSeconds),
      onGroupCommit: (appendCount, byteCount) => {
        this.groupCommitAppends.observe(appendCount);
        this.groupCommitBytes.observe(byteCount);
      },
    };
  }

  /** A metadata command was applied (walrus-node's onApply): counts rollovers. */
  onApplied(command: { readonly type: string }): void {
    if (command.type === 'sealSegment') this.rolloverCount += 1;
  }

  /** Wraps a monitor task so each round is timed and its failures counted (the error is rethrown). */
  timed<T extends { readonly name: string; run(): Promise<void> }>(task: T): T {
    const child = this.monitorSeconds.child(task.name);
    return {
      ...task,
      run: async () => {
        const startedMs = performance.now();
        try {
          await task.run();
        } catch (error) {
          this.monitorFailures.set(task.name, (this.monitorFailures.get(task.name) ?? 0) + 1);
          throw error;
        } finally {
          child.observe((performance.now() - startedMs) / 1000);
        }
      },
    };
  }

  /** The exposition text (Prometheus text format 0.0.4), every figure read now. */
  async scrape(): Promise<string> {
    for (const gauge of this.gauges.values()) gauge.reset();
    for (const counter of this.counters.values()) counter.reset();
    this.requests.refresh();
    this.collectNode();
    this.collectRaft();
    this.collectStorage();
    this.collectTopics();
    this.collectNetwork();
    await this.collectDisk();
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  private collectNode(): void {
    this.setGauge('walrus_node_info', 1, { version: process.env['npm_package_version'] ?? '0.1.0' });
    this.setGauge('walrus_node_ready', this.sources.ready() ? 1 : 0);
    for (let i = 0; i < logLevels.length; i++)
      this.setCounter('walrus_log_lines_total', this.logLines.counts[i]!, { level: logLevels[i]! });
    for (const [task, n] of this.monitorFailures)
      this.setCounter('walrus_monitor_task_failures_total', n, { task });
    this.setCounter('walrus_segment_rollovers_total', this.rolloverCount);
    const conn = this.sources.connections();
    this.setGauge('walrus_client_connections', conn?.count ?? 0);
    this.setGauge('walrus_buffered_input_bytes', conn?.bufferedInputBytes ?? 0);
    this.setCounter('walrus_buffered_input_refusals_total', conn?.bufferedInputRefusals ?? 0);
    const sec = this.sources.security?.();
    this.setCounter('walrus_tls_handshake_failures_total', sec?.tlsHandshakeFailures.client ?? 0, {
      listener: 'client',
    });
    this.setCounter('walrus_tls_handshake_failures_total', sec?.tlsHandshakeFailures.raft ?? 0, {
      listener: 'raft',
    });
    this.setCounter('walrus_config_reloads_total', sec?.reloadsSucceeded ?? 0, { result: 'success' });
    this.setCounter('walrus_config_reloads_total', sec?.reloadsFailed ?? 0, { result: 'failure' });
    this.setGauge('walrus_config_last_reload_successful', sec?.lastReloadSucceeded === false ? 0 : 1);
  }

  private collectRaft(): void {
    const raft = this.sources.raft();
    const nowMs = Date.now();
    for (const state of raftStates)
      this.setGauge('walrus_raft_state', raft.state === state ? 1 : 0, { state });
    const isLeader = raft.state === 'Leader';
    this.setGauge('walrus_raft_is_leader', isLeader ? 1 : 0);
    this.setGauge('walrus_raft_term', raft.term);
    this.setGauge('walrus_raft_leader_id', raft.leaderId ?? 0);
    this.setGauge('walrus_raft_last_log_index', raft.lastIndex);
    this.setGauge('walrus_raft_applied_index', raft.applied);
    this.setGauge('walrus_raft_snapshot_index', raft.snapshot?.index ?? 0);
    this.setGauge('walrus_raft_snapshot_term', raft.snapshot?.term ?? 0);
    this.setGauge('walrus_raft_voters', raft.voters.length);
    this.setGauge('walrus_raft_learners', raft.learners.length);
    const alive = this.sources.aliveVoterCount();
    this.setGauge('walrus_raft_alive_voters', alive);
    this.setGauge(
      'walrus_raft_quorum_ok',
      raft.voters.length > 0 && alive >= Math.floor(raft.voters.length / 2) + 1 ? 1 : 0,
    );
    if (isLeader) {
      for (const [id, p] of Object.entries(raft.progress)) {
        if (Number(id) === this.sources.nodeId) continue;
        this.setGauge('walrus_raft_follower_lag_entries', Math.max(0, raft.lastIndex - p.match), {
          follower: id,
        });
        const ackedAt = raft.ackedAtMs?.[id] ?? null;
        if (ackedAt !== null)
          this.setGauge('walrus_raft_follower_last_ack_age_seconds', Math.max(0, nowMs - ackedAt) / 1000, {
            follower: id,
          });
      }
      if (raft.quorumAckedAtMs !== null)
        this.setGauge('walrus_raft_quorum_ack_age_seconds', Math.max(0, nowMs - raft.quorumAckedAtMs) / 1000);
    }
    for (const [k, v] of Object.entries(raft.snapshotTransfer ?? {})) {
      if (k === 'bytesSent') this.setCounter('walrus_raft_snapshot_sent_bytes_total', v as number);
      else
        this.setCounter('walrus_raft_snapshot_transfers_total', v as number, {
          event: k.replace(/[A-Z]/g, (ch) => `_${ch.toLowerCase()}`),
        });
    }
  }

  private collectStorage(): void {
    const s = this.sources.storage();
    const num = (key: string): number => (typeof s[key] === 'number' ? (s[key] as number) : 0);
    this.setCounter('walrus_wal_appends_total', num('appendCount'));
    this.setCounter('walrus_wal_records_total', num('recordCount'));
    this.setCounter('walrus_wal_written_bytes_total', num('bytesWritten'));
    this.setCounter('walrus_wal_fsyncs_total', num('fsyncCount'));
    this.setCounter('walrus_wal_group_commits_total', num('groupCommitCount'));
    this.setCounter('walrus_wal_corrupt_records_total', num('corruptRecordCount'));
    this.setGauge('walrus_segments_under_replicated', num('segments_under_replicated'));
    this.setGauge('walrus_topics_unwritable', num('topics_unwritable'));
    if (typeof s['disk_reserve_bytes'] === 'number')
      this.setGauge('walrus_disk_reserve_bytes', s['disk_reserve_bytes']);
    this.setGauge('walrus_disk_full', s['disk_full'] === true ? 1 : 0);
  }

  private collectTopics(): void {
    const topics = this.sources.topics();
    const me = this.sources.nodeId;
    const n = this.options.topicSeriesCountMax;
    let ledActive = 0;
    let ledSealed = 0;
    let held = 0;
    let consumerCount = 0;
    let consumerLagMax = 0;
    const ends: { topic: string; segmentId: number; value: number }[] = [];
    const lags: { topic: string; consumer: string; value: number }[] = [];
    const state = topics?.metadata;
    if (topics !== null && state !== undefined) {
      this.setGauge('walrus_topics', state.topics.size);
      for (const topic of state.topics.values()) {
        for (const s of topic.segments) {
          if (s.leaderNodeId === me) {
            if (s.endOffset === null) ledActive++;
            else ledSealed++;
          }
          if (replicasOf(s).includes(me)) held++;
        }
        const active = activeSegment(topic);
        if (active.leaderNodeId !== me) continue;
        const end = topics.reader.knownEnd(topic);
        ends.push({ topic: topic.name, segmentId: active.id, value: end });
        for (const [consumer, offset] of topic.cursors) {
          const lag = Math.max(0, end - offset);
          consumerCount++;
          if (lag > consumerLagMax) consumerLagMax = lag;
          lags.push({ topic: topic.name, consumer, value: lag });
        }
      }
    } else {
      this.setGauge('walrus_topics', 0);
    }
    this.setGauge('walrus_segments_led', ledActive, { state: 'active' });
    this.setGauge('walrus_segments_led', ledSealed, { state: 'sealed' });
    this.setGauge('walrus_segment_replicas', held);
    this.setGauge('walrus_consumers', consumerCount);
    this.setGauge('walrus_consumer_max_lag_records', consumerLagMax);
    for (const e of topN(ends, n)) {
      this.setGauge('walrus_topic_active_segment_id', e.segmentId, { topic: e.topic });
      this.setGauge('walrus_topic_end_offset', e.value, { topic: e.topic });
    }
    for (const l of topN(lags, n))
      this.setGauge('walrus_consumer_lag_records', l.value, { topic: l.topic, consumer: l.consumer });
    const replicaLags: { topic: string; follower: string; value: number }[] = [];
    let replicaLagMax = 0;
    topics?.forEachReplicaLag((topic, follower, lagRecords) => {
      if (lagRecords > replicaLagMax) replicaLagMax = lagRecords;
      replicaLags.push({ topic, follower: String(follower), value: lagRecords });
    });
    for (const l of topN(replicaLags, n))
      this.setGauge('walrus_replica_lag_records', l.value, { topic: l.topic, follower: l.follower });
    this.setGauge('walrus_replica_max_lag_records', replicaLagMax);
    const dropped = (count: number): number => Math.max(0, count - n);
    this.setGauge('walrus_metrics_topic_series_dropped', dropped(ends.length), { family: 'topic' });
    this.setGauge('walrus_metrics_topic_series_dropped', dropped(lags.length), { family: 'consumer_lag' });
    this.setGauge('walrus_metrics_topic_series_dropped', dropped(replicaLags.length), {
      family: 'replica_lag',
    });
  }

  private collectNetwork(): void {
    for (const t of this.network.totals()) {
      this.setCounter('walrus_network_received_bytes_total', t.inBytes, { port: t.role });
      this.setCounter('walrus_network_sent_bytes_total', t.outBytes, { port: t.role });
    }
  }

  private async collectDisk(): Promise<void> {
    try {
      const st = await fs.promises.statfs(this.sources.nodeDir);
      this.setGauge('walrus_disk_total_bytes', st.blocks * st.bsize);
      this.setGauge('walrus_disk_free_bytes', st.bavail * st.bsize);
    } catch {
      // The directory is not there (yet): no figure rather than a wrong one.
    }
    const nowMs = Date.now();
    if (this.dataDirScan === null && nowMs - this.dataDirScanAtMs >= metricsLimits.dataDirScanIntervalMs) {
      this.dataDirScanAtMs = nowMs;
      this.dataDirScan = directoryBytes(this.sources.nodeDir, metricsLimits.dataDirScanEntryCountMax)
        .then((bytes) => {
          this.dataDirBytes = bytes;
        })
        .catch(() => {})
        .finally(() => {
          this.dataDirScan = null;
        });
      // The first scrape waits for the first figure; later ones serve the last and refresh behind.
      if (this.dataDirBytes === null) await this.dataDirScan;
    }
    if (this.dataDirBytes !== null) this.setGauge('walrus_data_dir_bytes', this.dataDirBytes);
  }

  close(): void {
    this.network.close();
    this.registry.clear();
  }
}

/** Bytes allocated to the files under `dir` (st_blocks, as du counts), visiting at most `entryCountMax` entries. */
export async function directoryBytes(dir: string, entryCountMax: number): Promise<number> {
  let bytes = 0;
  let visited = 0;
  const pending = [dir];
  while (pending.length > 0 && visited < entryCountMax) {
    const current = pending.pop()!;
    let entries: fs.Dirent[];
    try {
      entries = await fs.promises.readdir(current, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const entry of entries) {
      if (++visited > entryCountMax) break;
      const full = path.join(current, entry.name);
      if (entry.isDirectory()) pending.push(full);
      else if (entry.isFile()) {
        try {
          bytes += (await fs.promises.stat(full)).blocks * 512;
        } catch {
          // Removed meanwhile (retention, a settled copy).
        }
      }
    }
  }
  return bytes;
}
