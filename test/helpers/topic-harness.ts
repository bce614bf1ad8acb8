/**
 * In-process harness for the topic service: real TopicServices on real WALs in a temp directory,
 * sharing one real metadata log (a MetadataState applied in index order, as a single-node Raft
 * would, calling each node's onApply), with a cluster view whose forward() sends the request's
 * bytes through the target node's RequestHandler.executeForwarded. No mocks of the WAL or the
 * state machine. The clock is injected (WAL record times, topic creation, retention), so nothing
 * sleeps; tests wait on conditions with `until`.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeReply, encodeRequest } from '../../node/protocol/binary-codec.js';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import type { Request, RequestOp, ResponseByOp, StoredRecord } from '../../node/protocol/messages.js';
import {
  type MetaCommand,
  type MetadataSnapshot,
  MetadataState,
  type Retention,
} from '../../node/metadata/metadata-state.js';
import { Controller } from '../../node/controller/controller.js';
import type { Logger } from '../../node/log.js';
import { RequestHandler, type RequestHandlerOptions } from '../../node/server/request-handler.js';
import type { ClusterView, MetadataService } from '../../node/topics/ports.js';
import { TopicService } from '../../node/topics/topic-service.js';
import type { FileIo } from '../../node/storage-io/index.js';
import { type FsyncPolicy, Wal } from '../../node/wal/index.js';

/** A clock that moves only when told. */
export class ManualClock {
  now = 1_700_000_000_000;
  readonly nowMs = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

export interface LogLine {
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly msg: string;
  readonly obj: object;
}

/** A logger that keeps what it was told, so tests can look for a line. */
export class CapturingLogger implements Logger {
  readonly lines: LogLine[] = [];
  debug(obj: object, msg: string): void {
    this.lines.push({ level: 'debug', msg, obj });
  }
  info(obj: object, msg: string): void {
    this.lines.push({ level: 'info', msg, obj });
  }
  warn(obj: object, msg: string): void {
    this.lines.push({ level: 'warn', msg, obj });
  }
  error(obj: object, msg: string): void {
    this.lines.push({ level: 'error', msg, obj });
  }
  has(msg: string): boolean {
    return this.lines.some((l) => l.msg === msg);
  }
  count(msg: string): number {
    return this.lines.filter((l) => l.msg === msg).length;
  }
}

/**
 * The metadata log of a one-voter Raft, in process: propose() takes a turn of the event loop (a
 * commit is never synchronous), applies the command at the next index and calls every subscribed
 * node's onApply. `leader` false makes proposals and read barriers fail with NOT_LEADER.
 * `beforeApply` runs before each command is applied: it may throw (the proposal fails) or wait.
 */
export class LocalMetadataLog implements MetadataService {
  readonly state = new MetadataState();
  leader = true;
  /** Every command applied, in order (what the Raft log holds). */
  readonly committed: MetaCommand[] = [];
  beforeApply: ((command: MetaCommand) => void | Promise<void>) | null = null;
  /** The Raft leader's rewrite of a proposal (Controller.prepareProposal). */
  prepare: ((command: MetaCommand) => MetaCommand) | null = null;
  private readonly appliers = new Map<number, (command: MetaCommand) => void>();

  subscribe(nodeId: number, onApply: ((command: MetaCommand) => void) | null): void {
    if (onApply === null) this.appliers.delete(nodeId);
    else this.appliers.set(nodeId, onApply);
  }

  async propose(command: MetaCommand): Promise<number> {
    this.assertLeader();
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (this.beforeApply !== null) await this.beforeApply(command);
    this.assertLeader();
    const final = this.prepare === null ? command : this.prepare(command);
    const index = this.state.appliedIndex + 1;
    this.state.apply(index, final);
    this.committed.push(final);
    for (const onApply of this.appliers.values()) onApply(final);
    return index;
  }

  readBarrier(): Promise<void> {
    try {
      this.assertLeader();
      return Promise.resolve();
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /** Replaces the state with a snapshot's, as a follower installing one does (no onApply). */
  installSnapshot(snapshot: MetadataSnapshot): void {
    this.state.restore(snapshot);
  }

  /** The commands of one type, in commit order. */
  commands<T extends MetaCommand['type']>(type: T): Extract<MetaCommand, { type: T }>[] {
    return this.committed.filter((c): c is Extract<MetaCommand, { type: T }> => c.type === type);
  }

  private assertLeader(): void {
    if (!this.leader) throw new WalrusError(ErrorCode.NOT_LEADER, 'this node is not the Raft leader');
  }
}

export interface HarnessOptions {
  readonly nodeIds?: readonly number[];
  readonly segmentEntryCountMax?: number;
  readonly retentionDefault?: Retention;
  readonly fsyncPolicy?: FsyncPolicy;
  /** The FileIo of a node's WAL (a FaultInjectingFileIo for a full disk); default the real one. */
  readonly fileIo?: (nodeId: number) => FileIo | undefined;
  /** What a node's request handler reports of each request (its metrics); default none. */
  readonly requestObserver?: RequestHandlerOptions['requestObserver'];
}

/** One node: its WAL directory, and (while running) its WAL, topic service and request handler. */
export class HarnessNode {
  readonly id: number;
  readonly dir: string;
  readonly logger = new CapturingLogger();
  private current: { wal: Wal; service: TopicService; handler: RequestHandler } | null = null;
  private readonly harness: TopicHarness;

  constructor(harness: TopicHarness, id: number) {
    this.harness = harness;
    this.id = id;
    this.dir = path.join(harness.rootDir, `node_${id}`);
  }

  get running(): boolean {
    return this.current !== null;
  }
  get wal(): Wal {
    return this.live().wal;
  }
  get service(): TopicService {
    return this.live().service;
  }
  get handler(): RequestHandler {
    return this.live().handler;
  }

  /** Opens the WAL, builds the service, subscribes it to the log and runs recover(). */
  async start(): Promise<void> {
    if (this.current !== null) throw new Error(`node ${this.id} is running`);
    const h = this.harness;
    const wal = await Wal.open({
      rootDir: this.dir,
      fsyncPolicy: h.options.fsyncPolicy ?? { kind: 'always' },
      segmentPreallocateBytes: 256 * 1024,
      nowMs: h.clock.nowMs,
      logger: this.logger,
      ...(h.options.fileIo?.(this.id) === undefined ? {} : { fileIo: h.options.fileIo(this.id)! }),
    });
    const cluster = h.clusterView(this.id);
    const service = new TopicService({
      nodeId: this.id,
      wal,
      meta: h.log,
      cluster,
      segmentEntryCountMax: h.options.segmentEntryCountMax ?? 1000,
      retentionDefault: h.options.retentionDefault ?? { retentionMs: null, retentionBytes: null },
      nowMs: h.clock.nowMs,
      logger: this.logger,
    });
    const handler = new RequestHandler({
      topics: service,
      controller: h.controller(this.id),
      cluster,
      nodeId: this.id,
      clientAddr: clientAddrOf(this.id),
      metricsJson: () => ({ nodeId: this.id }),
      logger: this.logger,
      ...(h.options.requestObserver === undefined ? {} : { requestObserver: h.options.requestObserver }),
    });
    this.current = { wal, service, handler };
    h.log.subscribe(this.id, (command) => service.onApply(command));
    await service.recover();
  }

  /** A clean stop: long polls woken, rollovers finished, WAL closed. */
  async stop(): Promise<void> {
    const current = this.live();
    this.harness.log.subscribe(this.id, null);
    this.current = null;
    await current.service.close();
    await current.wal.close();
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  /** The directory of a topic's WAL data on this node. */
  topicDir(topic: string): string {
    return path.join(this.dir, 'topics', topic);
  }

  /** The files of one WAL segment on this node. */
  segmentFiles(topic: string, segmentId: number): string[] {
    const base = String(segmentId).padStart(20, '0');
    return ['wal', 'idx', 'seal'].map((ext) => path.join(this.topicDir(topic), `${base}.${ext}`));
  }

  private live(): { wal: Wal; service: TopicService; handler: RequestHandler } {
    if (this.current === null) throw new Error(`node ${this.id} is stopped`);
    return this.current;
  }
}

export function clientAddrOf(nodeId: number): string {
  return `127.0.0.1:${9000 + nodeId}`;
}

export class TopicHarness {
  readonly rootDir: string;
  readonly clock = new ManualClock();
  readonly log = new LocalMetadataLog();
  readonly nodes = new Map<number, HarnessNode>();
  readonly options: HarnessOptions;
  /** The Raft leader every node sees (the local log's one voter). */
  raftLeaderId: number;
  /** Voters the Raft leader hears from; per-node overrides in `aliveViews`. */
  alive: number[];
  readonly aliveViews = new Map<number, number[]>();

  private constructor(options: HarnessOptions) {
    this.options = options;
    const ids = [...(options.nodeIds ?? [1])].sort((a, b) => a - b);
    this.rootDir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-topics-'));
    for (const id of ids) this.nodes.set(id, new HarnessNode(this, id));
    this.raftLeaderId = ids[0]!;
    this.alive = ids;
  }

  /** Nodes registered in the metadata (with client addresses) and started. */
  static async start(options: HarnessOptions = {}): Promise<TopicHarness> {
    const h = new TopicHarness(options);
    for (const id of h.nodes.keys())
      await h.log.propose({
        type: 'registerNode',
        node: { nodeId: id, raftAddr: `127.0.0.1:${8000 + id}`, clientAddr: clientAddrOf(id) },
      });
    for (const node of h.nodes.values()) await node.start();
    return h;
  }

  node(id: number): HarnessNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  /** Node 1's service (single-node tests). */
  get service(): TopicService {
    return this.node(this.firstId()).service;
  }

  voters(): number[] {
    return [...this.nodes.keys()].sort((a, b) => a - b);
  }

  /**
   * Creates a topic whose first segment `leader` leads (the placement is the test's choice), copied
   * on `replicas` (leader first; default: the leader alone).
   */
  async createTopic(
    name: string,
    leader = this.firstId(),
    retention?: Partial<Retention>,
    replicas?: readonly number[],
  ): Promise<void> {
    await this.log.propose({
      type: 'createTopic',
      name,
      retention: { retentionMs: null, retentionBytes: null, ...retention },
      createdAtMs: this.clock.now,
      leaderNodeId: leader,
      ...(replicas === undefined ? {} : { replicas, replicationFactor: replicas.length }),
    });
  }

  /** A controller for `nodeId`, leading when the harness says that node leads Raft. */
  controller(nodeId: number): Controller {
    return new Controller({
      nodeId,
      state: this.log.state,
      isRaftLeader: () => this.raftLeaderId === nodeId && this.log.leader,
      voters: () => this.voters(),
      aliveVoters: () => this.alive,
      propose: (command) => this.log.propose(command),
      repairSegment: (topic, segmentId, gone, target) =>
        this.node(nodeId).service.repairSegment(topic, segmentId, gone, target),
      repairAfterMs: 60_000,
      delay: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      ensureCopy: (topic, segmentId, target) =>
        this.node(nodeId).service.ensureCopy(topic, segmentId, target),
      recoverSegment: (topic, segmentId, reason) =>
        this.node(nodeId).service.recoverSegment(topic, segmentId, reason),
      nowMs: this.clock.nowMs,
      logger: this.node(nodeId).logger,
    });
  }

  clusterView(self: number): ClusterView {
    return {
      raftLeaderId: () => this.raftLeaderId,
      voters: () => this.voters(),
      aliveVoters: () => this.aliveViews.get(self) ?? this.alive,
      removeNode: () => Promise.resolve(false),
      handLeadershipAway: () =>
        Promise.reject(
          new WalrusError(ErrorCode.UNAVAILABLE, 'the harness has no Raft leadership to hand away'),
        ),
      reachable: (nodeId: number) => this.nodes.get(nodeId)?.running === true,
      catchUpWithLeader: () => Promise.resolve(),
      forward: <Op extends RequestOp>(nodeId: number, request: Extract<Request, { op: Op }>) =>
        this.forward<Op>(nodeId, request),
      forwardRaw: (nodeId: number, frame: Uint8Array) => this.forwardRaw(nodeId, frame),
      replicate: (nodeId: number, request: Uint8Array) => this.replicate(nodeId, request),
    };
  }

  /** Delivers a replication request to the target node's replica service (a copy of the bytes, as a socket would). */
  private async replicate(nodeId: number, request: Uint8Array): Promise<Buffer> {
    const target = this.nodes.get(nodeId);
    if (target === undefined || !target.running)
      throw new WalrusError(ErrorCode.UNAVAILABLE, `node ${nodeId} cannot be reached`);
    return Buffer.from(await target.service.handleReplication(Buffer.from(request)));
  }

  /** Relays a request frame to the target node's forwarded-request path; its reply frame unchanged. */
  private forwardRaw(nodeId: number, frame: Uint8Array): Promise<Buffer> {
    const target = this.nodes.get(nodeId);
    if (target === undefined || !target.running)
      return Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, `node ${nodeId} cannot be reached`));
    return target.handler.executeForwarded(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
  }

  /** Sends the request's bytes to the target node's forwarded-request path and decodes its reply. */
  private async forward<Op extends RequestOp>(
    nodeId: number,
    request: Extract<Request, { op: Op }>,
  ): Promise<ResponseByOp[Op]> {
    const target = this.nodes.get(nodeId);
    if (target === undefined || !target.running)
      throw new WalrusError(ErrorCode.UNAVAILABLE, `node ${nodeId} cannot be reached`);
    const reply = decodeReply(await target.handler.executeForwarded(encodeRequest(1, request)));
    if (reply.kind === 'response') return reply.response as ResponseByOp[Op];
    if (reply.kind === 'error')
      throw new WalrusError(
        reply.error.code,
        reply.error.message,
        reply.error.leaderHint ? { leaderHint: reply.error.leaderHint } : undefined,
      );
    throw reply.error;
  }

  async close(): Promise<void> {
    for (const node of this.nodes.values()) if (node.running) await node.stop();
    fs.rmSync(this.rootDir, { recursive: true, force: true });
  }

  private firstId(): number {
    return this.voters()[0]!;
  }
}

/** Waits until `probe` holds, checking after each turn of the event loop; fails after `timeoutMs`. */
export async function until(what: string, probe: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** A promise with its resolve, for a test to release a held step. */
export function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** Records with the given values (UTF-8). */
export function recordsOf(...values: string[]): { value: Uint8Array }[] {
  return values.map((v) => ({ value: Buffer.from(v) }));
}

/** A record's value as text. */
export function text(record: { value: Uint8Array }): string {
  return Buffer.from(record.value).toString();
}

/** The rejection's WalrusError code (fails the test when it resolves or throws something else). */
export async function codeOf(run: () => unknown): Promise<string> {
  try {
    await run();
  } catch (error) {
    if (error instanceof WalrusError) return error.code;
    throw error;
  }
  throw new Error('expected a WalrusError rejection, got a result');
}

export const readAll = { recordCountMax: 10_000, byteCountMax: 1024 * 1024 } as const;

/** Every acknowledged record from `from` to the end, page by page across segments (waitMs 0). */
export async function readToEnd(service: TopicService, topic: string, from = 0): Promise<StoredRecord[]> {
  const out: StoredRecord[] = [];
  for (let offset = from; ; ) {
    const page = await service.reader.read(topic, offset, { ...readAll, waitMs: 0 });
    if (page.records.length === 0) return out;
    out.push(...page.records);
    offset = page.nextOffset;
  }
}

/** Lets the event loop run `n` turns (for asserting that something still waits; not a sleep). */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}
