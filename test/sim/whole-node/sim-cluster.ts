/**
 * The simulated cluster: its nodes (each a SimNode on its own SimDisk), their lifecycle (boot,
 * crash with or without the page cache, the supervisor's restart, a node that exits, removal),
 * the client connections to nodes, and what happens when a node's process throws: an injected
 * disk fault crashes that node (as an uncaught exception does), anything else is a bug.
 */
import { decodeReply, encodeRequest } from '../../../node/protocol/binary-codec.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import type { Request, RequestOp, ResponseByOp } from '../../../node/protocol/messages.js';
import type { Logger } from '../../../node/log.js';
import {
  type MetaCommand,
  type MetadataState,
  topicStartOffset,
} from '../../../node/metadata/metadata-state.js';
import { Prng } from '../../../node/raft/index.js';
import type { ReplyChannel } from '../../../node/server/request-handler.js';
import { violation } from './oracle.js';
import { RaftChecks } from './raft-checks.js';
import type { WalObserver } from './replication-checks.js';
import { SimDisk, diskPrng } from './sim-disk.js';
import { SimNetwork } from './sim-network.js';
import { type NodeSettings, SimNode } from './sim-node.js';
import { ProcessDead, type SimProcess, SimWorld } from './sim-world.js';

/** Delay of a client's request or reply on its connection (simulated ms). */
const clientDelayMaxMs = 3;
/** A node that exited (not refused) is started again after this long (a supervisor). */
const supervisorRestartMs = 1000;
/** Log lines kept for a failure report. */
const logTailLines = 60;

export type ClientOutcome<Op extends RequestOp> =
  | { readonly ok: true; readonly response: ResponseByOp[Op] }
  | { readonly ok: false; readonly code: string; readonly message: string; readonly definite: boolean };

export interface ClusterStats {
  boots: number;
  kills: number;
  powerLosses: number;
  faultCrashes: number;
  exits: number;
  refusals: number;
  clientRequests: number;
  snapshotInstalls: number;
}

/** True for errors the simulator injected into a disk (a crash they cause is expected). */
export function isInjected(error: unknown): boolean {
  for (let e: unknown = error; e instanceof Error; e = (e as { cause?: unknown }).cause) {
    if (e.message.includes('injected')) return true;
  }
  return false;
}

class TailLogger implements Logger {
  constructor(
    private readonly cluster: SimCluster,
    private readonly nodeId: number,
  ) {}
  debug(): void {}
  info(obj: object, msg: string): void {
    this.cluster.log(this.nodeId, 'info', msg, obj);
  }
  warn(obj: object, msg: string): void {
    this.cluster.log(this.nodeId, 'warn', msg, obj);
  }
  error(obj: object, msg: string): void {
    this.cluster.log(this.nodeId, 'error', msg, obj);
  }
}

export class SimCluster {
  readonly world = new SimWorld();
  readonly net: SimNetwork;
  readonly checks = new RaftChecks();
  readonly nodes = new Map<number, SimNode>();
  /** Ids removed from the cluster (their process is stopped and never restarted). */
  readonly removed = new Set<number>();
  /** Nodes whose durable data had a bit flipped (their records may be lost; they may refuse to start). */
  readonly rotted = new Set<number>();
  readonly stats: ClusterStats = {
    boots: 0,
    kills: 0,
    powerLosses: 0,
    faultCrashes: 0,
    exits: 0,
    refusals: 0,
    clientRequests: 0,
    snapshotInstalls: 0,
  };
  private readonly tail: string[] = [];
  private readonly prng: Prng;
  private nextClientConn = 1;
  /** Client requests a process has not answered yet (a reset connection fails them). */
  private readonly connections = new Map<SimProcess, Set<() => void>>();
  /** Called with a crashed node's id: the workload decides when it restarts. */
  onCrash: (nodeId: number) => void = () => {};
  /** Called when a node applied a topic start (retention moved it). */
  onTopicStart: (topic: string, start: number) => void = () => {};
  /** Called with an invariant violation found outside an event (a node's exit). */
  onViolation: (error: unknown) => void = (error) => {
    throw error;
  };
  trace: ((line: string) => void) | null = null;
  /** Sees every node's WAL writes and seals (the replication checks), when set. */
  walObserver: WalObserver | null = null;
  /** Called with each node's id and metadata after each applied command (null: a snapshot). */
  onNodeApplied: (nodeId: number, state: MetadataState, command: MetaCommand | null) => void = () => {};

  constructor(
    readonly seed: number,
    readonly settings: NodeSettings,
  ) {
    this.prng = new Prng(seed ^ 0xc1a5);
    this.net = new SimNetwork(this.world, this.prng.fork());
    this.world.onProcessError = (owner, error) => this.processError(owner, error);
  }

  log(nodeId: number, level: string, msg: string, obj: object): void {
    const line = `${this.world.now.toFixed(0)} n${nodeId} ${level} ${msg} ${safeJson(obj)}`;
    this.trace?.(line);
    this.tail.push(line);
    if (this.tail.length > logTailLines) this.tail.shift();
  }

  logTail(): string {
    return this.tail.join('\n');
  }

  /** Adds a node (not started). */
  addNode(id: number, joins: boolean, skewMs: number): SimNode {
    const disk = new SimDisk(`node ${id}`, diskPrng(this.seed, id));
    const node = new SimNode(
      id,
      disk,
      joins,
      {
        world: this.world,
        net: this.net,
        checks: this.checks,
        settings: this.settings,
        logger: (nodeId) => new TailLogger(this, nodeId),
        joinTarget: (self) => this.pickMember(self),
        newId: () => this.newId(),
        prng: this.prng.fork(),
        walObserver: () => this.walObserver,
        onApplied: (state, command) => {
          this.onNodeApplied(id, state, command);
          if (command === null) {
            this.stats.snapshotInstalls++;
            for (const t of state.topics.values()) this.onTopicStart(t.name, topicStartOffset(t));
          } else if (command.type === 'dropSegments') {
            const t = state.topics.get(command.topic);
            if (t !== undefined) this.onTopicStart(t.name, topicStartOffset(t));
          }
        },
      },
      skewMs,
    );
    disk.onCrashPoint = () => {
      this.stats.faultCrashes++;
      this.crash(id, true);
    };
    this.nodes.set(id, node);
    return node;
  }

  private newId(): string {
    let hex = '';
    for (let i = 0; i < 4; i++) hex += this.prng.nextU32().toString(16).padStart(8, '0');
    return hex === '0'.repeat(32) ? `${'0'.repeat(31)}1` : hex;
  }

  /** A running member other than `self` to join through (null when none serves). */
  private pickMember(self: number): number | null {
    const up = [...this.nodes.values()].filter(
      (n) =>
        n.id !== self &&
        !this.removed.has(n.id) &&
        n.running?.serving === true &&
        n.running.state.nodes.has(n.id),
    );
    return up.length === 0 ? null : up[this.prng.nextInt(up.length)]!.id;
  }

  node(id: number): SimNode {
    const n = this.nodes.get(id);
    if (n === undefined) throw new Error(`no node ${id}`);
    return n;
  }

  /** Starts a node's process now (in an event of its own). */
  boot(id: number): void {
    const node = this.node(id);
    if (node.running !== null || this.removed.has(id) || node.refused !== null) return;
    this.stats.boots++;
    this.world.after(0, () => {
      if (node.running !== null) return;
      const { process, started } = node.boot();
      started.catch((error: unknown) => this.bootFailed(node, process, error));
    });
  }

  private bootFailed(node: SimNode, process: SimProcess, error: unknown): void {
    if (!process.alive || error instanceof ProcessDead) return;
    // walrus-node exits 1; the page cache stays (the machine did not crash).
    this.stats.exits++;
    this.log(node.id, 'error', 'node exited', { err: String(error) });
    this.killNode(node, false);
    if (node.refused !== null) {
      this.stats.refusals++;
      return;
    }
    if (!isInjected(error) && !isExpectedExit(error)) {
      try {
        violation('NodeExit', `node ${node.id} exited: ${stackOf(error)}`);
      } catch (v) {
        this.onViolation(v);
      }
    }
    this.world.after(supervisorRestartMs, () => this.boot(node.id));
  }

  /** Kills a node's process (`powerLoss`: the page cache goes too) and lets the workload restart it. */
  crash(id: number, powerLoss: boolean): void {
    const node = this.node(id);
    if (node.running === null) return;
    this.stats.kills++;
    if (powerLoss) this.stats.powerLosses++;
    this.killNode(node, powerLoss);
    this.onCrash(id);
  }

  private processError(owner: SimProcess, error: unknown): void {
    if (error instanceof ProcessDead) return;
    const node = this.node(owner.nodeId);
    if (node.running?.process !== owner) return;
    if (!isInjected(error)) violation('NodeCrash', `node ${owner.nodeId} threw: ${stackOf(error)}`);
    this.stats.faultCrashes++;
    this.log(owner.nodeId, 'error', 'uncaught exception (injected fault): the process dies', {
      err: String(error),
    });
    this.killNode(node, false);
    this.onCrash(owner.nodeId);
  }

  /**
   * The node's data directory is wiped (a lost disk): its process dies and everything it held is
   * gone. Started again it has a new identity; an operator starts it with --join.
   */
  wipe(id: number): void {
    const node = this.node(id);
    this.stats.kills++;
    this.killNode(node, true);
    node.disk.wipe();
    node.disk.provision('/data');
    node.joins = true;
    this.checks.forget(id);
  }

  /** How many times each node was re-added (its lives after the first). */
  private readonly readds = new Map<number, number>();

  /** Which life of node `id` runs: 0, then one more at each re-add (a wiped node's new identity). */
  lifeOf(id: number): number {
    return this.readds.get(id) ?? 0;
  }

  /** Node `id` runs under a new identity from now on (re-added, or rejoined after its removal). */
  newLife(id: number): void {
    this.readds.set(id, this.lifeOf(id) + 1);
  }

  /** An operator brings a removed node back: its directory emptied, started with --join. */
  readd(id: number): void {
    this.newLife(id);
    const node = this.node(id);
    node.disk.wipe();
    node.disk.provision('/data');
    node.joins = true;
    node.refused = null;
    this.removed.delete(id);
    this.checks.forget(id);
  }

  /** Removes a node for good (after an acknowledged remove-node). */
  decommission(id: number): void {
    this.removed.add(id);
    this.killNode(this.node(id), false);
  }

  /**
   * Sends a binary request to a node as a client does and resolves with its reply, or with an
   * error: the node's, UNAVAILABLE when it is not serving or dies first (`definite` false: it
   * may have acted), TIMEOUT after `timeoutMs`.
   */
  call<Op extends RequestOp>(
    nodeId: number,
    request: Extract<Request, { op: Op }>,
    timeoutMs: number,
  ): Promise<ClientOutcome<Op>> {
    this.stats.clientRequests++;
    const world = this.world;
    return new Promise((resolve) => {
      let done = false;
      const sent =
        this.trace === null ? '' : `${nodeId} (sent ${world.now.toFixed(0)}) ${describeRequest(request)}`;
      const finish = (o: ClientOutcome<Op>): void => {
        if (done) return;
        done = true;
        if (this.trace !== null)
          this.trace(
            `${world.now.toFixed(0)} client ${sent} -> ${o.ok ? safeJson(o.response as object) : `${o.code} ${o.message}`}`,
          );
        resolve(o);
      };
      world.after(timeoutMs, () =>
        finish({ ok: false, code: ErrorCode.TIMEOUT, message: 'client timeout', definite: false }),
      );
      const r = this.nodes.get(nodeId)?.running;
      if (r === undefined || r === null || !r.serving || r.handler === null) {
        world.after(1, () =>
          finish({
            ok: false,
            code: ErrorCode.UNAVAILABLE,
            message: `node ${nodeId} is not serving`,
            definite: true,
          }),
        );
        return;
      }
      const handler = r.handler;
      const process = r.process;
      const requestId = this.nextClientConn;
      const lost = (): void =>
        finish({ ok: false, code: ErrorCode.UNAVAILABLE, message: 'connection lost', definite: false });
      const conn: ReplyChannel = {
        id: this.nextClientConn++,
        closed: false,
        send: (payload) => {
          this.connections.get(process)?.delete(lost);
          const reply = decodeReply(Buffer.from(payload));
          world.after(1 + this.prng.nextInt(clientDelayMaxMs), () => {
            if (reply.kind === 'response') finish({ ok: true, response: reply.response as ResponseByOp[Op] });
            else if (reply.kind === 'error')
              finish({ ok: false, code: reply.error.code, message: reply.error.message, definite: false });
            else finish({ ok: false, code: 'MALFORMED', message: String(reply.error), definite: false });
          });
        },
        close: () => {},
      };
      const frame = encodeRequest(requestId, request);
      // A connection reset when the process dies.
      world.after(
        1 + this.prng.nextInt(clientDelayMaxMs),
        () => {
          if (!process.alive) {
            finish({ ok: false, code: ErrorCode.UNAVAILABLE, message: 'connection lost', definite: false });
            return;
          }
          let open = this.connections.get(process);
          if (open === undefined) {
            open = new Set();
            this.connections.set(process, open);
          }
          open.add(lost);
          handler.onFrame(conn, frame);
        },
        process,
      );
    });
  }

  /** A process died: its client connections reset (their requests fail UNAVAILABLE, outcome unknown). */
  private killNode(node: SimNode, powerLoss: boolean): void {
    const process = node.running?.process;
    node.kill(powerLoss);
    if (process === undefined) return;
    const open = this.connections.get(process);
    this.connections.delete(process);
    for (const lost of open ?? []) this.world.after(1 + this.prng.nextInt(clientDelayMaxMs), lost);
  }

  /** True once data may have been lost legitimately (bit rot). */
  dataMayBeLost(): boolean {
    return this.rotted.size > 0;
  }

  /** Ids whose process is up (not necessarily serving yet). */
  upIds(): number[] {
    return [...this.nodes.values()].filter((n) => n.running !== null).map((n) => n.id);
  }
}

/** Exits that a real node makes while the cluster is unhealthy (it is restarted). */
function isExpectedExit(error: unknown): boolean {
  const code = (error as { code?: string }).code;
  return code === ErrorCode.TIMEOUT || code === ErrorCode.UNAVAILABLE || code === ErrorCode.NOT_LEADER;
}

export function stackOf(error: unknown): string {
  return error instanceof Error ? (error.stack ?? error.message) : String(error);
}

function describeRequest(request: Request): string {
  const { op, ...rest } = request as Request & { records?: unknown[] };
  if (rest.records !== undefined)
    rest.records = rest.records.map((r) => Buffer.from((r as { value: Uint8Array }).value).toString());
  return `${op} ${safeJson(rest)}`;
}

function safeJson(obj: object): string {
  try {
    const text = JSON.stringify(obj);
    return text.length > 300 ? `${text.slice(0, 300)}…` : text;
  } catch {
    return '?';
  }
}
