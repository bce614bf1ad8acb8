/**
 * The simulated network between nodes (and from clients to nodes), delivering through the world's
 * event queue:
 *
 * - One-way Raft messages (`PeerSender.send`): per-message seeded delay (so they reorder), loss,
 *   duplication, rare long delays, and directed partitions (one-way possible).
 * - Requests (`request`, `requestSnapshotChunk`): delayed and lost like messages; a lost request
 *   or reply, or a partition, ends in the caller's TIMEOUT; a peer that is down, or dies with the
 *   request pending, fails it UNAVAILABLE after a short delay (a refused or reset connection). The
 *   real peer link never resends a request, so only segment replication's requests (appends, fences,
 *   copy reads: meant to be safe to repeat) are duplicated, at twice the weather's dupRate: the copy
 *   arrives later, out of order with what follows, and its answer is dropped.
 * - The real peer frame limit: a message, request or reply whose frame exceeds
 *   protocolLimits.frameSizeMaxBytes is dropped (message) or refused FRAME_TOO_LARGE, as
 *   node/transport does.
 * - Identity: each delivery runs both nodes' PeerIdentityGuard, as the peer handshake does.
 * - In-flight traffic from or to a process that died is dropped.
 *
 * `SimPeers` is one node's PeerSender: like node/bin/peers.ts it reaches only nodes whose address
 * the applied metadata holds (or the join reply told), else "no address known for node N".
 */
import type { Prng } from '../../../node/raft/index.js';
import { ErrorCode, WalrusError } from '../../../node/protocol/error-codes.js';
import { protocolLimits } from '../../../node/protocol/limits.js';
import type { PeerIdentity } from '../../../node/metadata/cluster-identity.js';
import type { MetadataState } from '../../../node/metadata/metadata-state.js';
import type { PeerSender } from '../../../node/metadata/raft-node.js';
import { TransportError } from '../../../node/transport/transport-error.js';
import { asWalrusError, peerFrameOverheadBytes } from '../../../node/transport/peer-wire.js';
import { isReplicationPayload } from '../../../node/protocol/replication-codec.js';
import type { SimProcess, SimScheduler, SimWorld } from './sim-world.js';

/** Delay of a refused or reset connection's error (simulated ms). */
const connectionErrorDelayMs = 2;
/** A long delay: a message that arrives after the world moved on. */
const longDelayMaxMs = 400;

export interface Weather {
  dropRate: number;
  dupRate: number;
  delayMinMs: number;
  delayMaxMs: number;
  longDelayRate: number;
}

export const calmWeather: Weather = {
  dropRate: 0,
  dupRate: 0,
  delayMinMs: 1,
  delayMaxMs: 3,
  longDelayRate: 0,
};

/** What a node listens with (its PeerServer's callbacks) and who it is. */
export interface PeerEndpoint {
  readonly nodeId: number;
  readonly process: SimProcess;
  readonly scheduler: SimScheduler;
  onMessage(from: number, payload: Uint8Array): void;
  onRequest(from: number, payload: Buffer): Promise<Uint8Array>;
  onSnapshotChunk(from: number, payload: Buffer): Promise<Uint8Array>;
  /** Throws IDENTITY_MISMATCH when this node refuses `peer` (PeerIdentityGuard.check). */
  checkPeer(peer: PeerIdentity): void;
  self(): PeerIdentity;
}

export interface NetworkStats {
  sent: number;
  delivered: number;
  dropped: number;
  duplicated: number;
  duplicatedRequests: number;
  oversize: number;
  requests: number;
  requestTimeouts: number;
  identityRefusals: number;
}

function frameTooLarge(bytes: number): boolean {
  return bytes + peerFrameOverheadBytes - 4 > protocolLimits.frameSizeMaxBytes;
}

interface PendingRequest {
  settled: boolean;
  /** The caller's process: the outcome is delivered only while it lives. */
  readonly owner: SimProcess;
  readonly resolve: (reply: Buffer) => void;
  readonly reject: (error: Error) => void;
}

export class SimNetwork {
  weather: Weather = calmWeather;
  /** Scripted scenarios: requests this returns true for are lost (the caller times out). */
  dropRequest: ((from: number, to: number, payload: Uint8Array) => boolean) | null = null;
  /** Directed links that deliver nothing: `${from}>${to}`. */
  private readonly cut = new Set<string>();
  private readonly endpoints = new Map<number, PeerEndpoint>();
  /** Requests awaiting a reply, by the process that must answer them. */
  private readonly awaiting = new Map<SimProcess, Set<PendingRequest>>();
  readonly stats: NetworkStats = {
    sent: 0,
    delivered: 0,
    dropped: 0,
    duplicated: 0,
    duplicatedRequests: 0,
    oversize: 0,
    requests: 0,
    requestTimeouts: 0,
    identityRefusals: 0,
  };

  constructor(
    private readonly world: SimWorld,
    private readonly prng: Prng,
  ) {}

  listen(endpoint: PeerEndpoint): void {
    this.endpoints.set(endpoint.nodeId, endpoint);
  }

  /** The process died: its listener goes, requests it was answering fail as a reset connection. */
  down(process: SimProcess): void {
    if (this.endpoints.get(process.nodeId)?.process === process) this.endpoints.delete(process.nodeId);
    const pending = this.awaiting.get(process);
    this.awaiting.delete(process);
    for (const p of pending ?? []) {
      this.world.after(
        connectionErrorDelayMs,
        () =>
          settle(
            p,
            new TransportError(ErrorCode.UNAVAILABLE, `connection to peer ${process.nodeId} was lost`, true),
          ),
        p.owner,
      );
    }
  }

  isUp(nodeId: number): boolean {
    return this.endpoints.has(nodeId);
  }

  // ---- partitions ----

  cutLink(from: number, to: number): void {
    this.cut.add(`${from}>${to}`);
  }

  healAll(): void {
    this.cut.clear();
  }

  linkCut(from: number, to: number): boolean {
    return this.cut.has(`${from}>${to}`);
  }

  get cutCount(): number {
    return this.cut.size;
  }

  // ---- delivery ----

  private delay(): number {
    const w = this.weather;
    if (w.longDelayRate > 0 && this.prng.chance(w.longDelayRate))
      return 1 + this.prng.nextInt(longDelayMaxMs);
    return w.delayMinMs + this.prng.nextInt(w.delayMaxMs - w.delayMinMs + 1);
  }

  private lost(from: number, to: number): boolean {
    return this.linkCut(from, to) || (this.weather.dropRate > 0 && this.prng.chance(this.weather.dropRate));
  }

  /** Both handshake checks; false (and counted) when either side refuses the other. */
  private admitted(a: PeerEndpoint, b: PeerEndpoint): boolean {
    try {
      b.checkPeer(a.self());
      a.checkPeer(b.self());
      return true;
    } catch (error) {
      if (error instanceof WalrusError && error.code === ErrorCode.IDENTITY_MISMATCH) {
        this.stats.identityRefusals++;
        return false;
      }
      throw error;
    }
  }

  send(src: PeerEndpoint, to: number, payload: Uint8Array): void {
    this.stats.sent++;
    if (frameTooLarge(payload.length)) {
      this.stats.oversize++;
      return;
    }
    const copies = this.weather.dupRate > 0 && this.prng.chance(this.weather.dupRate) ? 2 : 1;
    if (copies === 2) this.stats.duplicated++;
    for (let c = 0; c < copies; c++) {
      const dst = this.endpoints.get(to);
      if (dst === undefined || this.lost(src.nodeId, to)) {
        this.stats.dropped++;
        continue;
      }
      this.world.after(
        this.delay(),
        () => {
          if (!src.process.alive || !this.admitted(src, dst)) {
            this.stats.dropped++;
            return;
          }
          this.stats.delivered++;
          dst.onMessage(src.nodeId, payload);
        },
        dst.process,
      );
    }
  }

  request(
    src: PeerEndpoint,
    to: number,
    payload: Uint8Array,
    timeoutMs: number,
    chunk: boolean,
  ): Promise<Buffer> {
    this.stats.requests++;
    return new Promise<Buffer>((resolve, reject) => {
      const p: PendingRequest = { settled: false, owner: src.process, resolve, reject };
      if (frameTooLarge(payload.length)) {
        this.stats.oversize++;
        const message = `peer request of ${payload.length} bytes exceeds the frame limit`;
        settle(p, new TransportError(ErrorCode.FRAME_TOO_LARGE, message, false));
        return;
      }
      src.scheduler.setTimeout(() => {
        if (p.settled) return;
        this.stats.requestTimeouts++;
        settle(
          p,
          new TransportError(ErrorCode.TIMEOUT, `no reply from peer ${to} within ${timeoutMs} ms`, true),
        );
      }, timeoutMs);
      const dst = this.endpoints.get(to);
      if (dst === undefined) {
        this.world.after(
          connectionErrorDelayMs,
          () => settle(p, new TransportError(ErrorCode.UNAVAILABLE, `peer ${to} is not reachable`, false)),
          src.process,
        );
        return;
      }
      if (this.lost(src.nodeId, to) || this.dropRequest?.(src.nodeId, to, payload) === true) {
        this.stats.dropped++;
        return; // the caller times out
      }
      let waiting = this.awaiting.get(dst.process);
      if (waiting === undefined) {
        waiting = new Set();
        this.awaiting.set(dst.process, waiting);
      }
      waiting.add(p);
      this.world.after(
        this.delay(),
        () => {
          if (!src.process.alive) return;
          if (!this.admitted(src, dst)) {
            waiting.delete(p);
            const refusal = new TransportError(
              ErrorCode.IDENTITY_MISMATCH,
              `peer ${to} refused this node`,
              false,
            );
            this.world.after(this.delay(), () => settle(p, refusal), src.process);
            return;
          }
          this.stats.delivered++;
          const copy = Buffer.from(payload);
          if (
            !chunk &&
            this.weather.dupRate > 0 &&
            isReplicationPayload(copy) &&
            this.prng.chance(Math.min(1, 2 * this.weather.dupRate))
          )
            this.duplicate(src, dst, copy);
          let answer: Promise<Uint8Array>;
          try {
            answer = chunk ? dst.onSnapshotChunk(src.nodeId, copy) : dst.onRequest(src.nodeId, copy);
          } catch (error) {
            answer = Promise.reject(error);
          }
          answer.then(
            (bytes) => {
              const reply: Buffer | Error = frameTooLarge(bytes.length)
                ? new WalrusError(
                    ErrorCode.FRAME_TOO_LARGE,
                    `reply of ${bytes.length} bytes exceeds the peer frame limit`,
                  )
                : Buffer.from(bytes);
              this.reply(dst, src, p, waiting, reply);
            },
            (error: unknown) => {
              const e = asWalrusError(error);
              const leaderHint = e.leaderHint;
              this.reply(
                dst,
                src,
                p,
                waiting,
                new WalrusError(e.code, e.message, leaderHint === undefined ? undefined : { leaderHint }),
              );
            },
          );
        },
        dst.process,
      );
    });
  }

  /** Delivers a replication request a second time, later; its answer goes nowhere. */
  private duplicate(src: PeerEndpoint, dst: PeerEndpoint, payload: Buffer): void {
    this.stats.duplicatedRequests++;
    const again = Buffer.from(payload);
    this.world.after(
      this.delay() + this.delay(),
      () => {
        if (this.endpoints.get(dst.nodeId) !== dst) return;
        try {
          dst.onRequest(src.nodeId, again).catch(() => {});
        } catch {
          // Answered nowhere either way.
        }
      },
      dst.process,
    );
  }

  private reply(
    dst: PeerEndpoint,
    src: PeerEndpoint,
    p: PendingRequest,
    waiting: Set<PendingRequest>,
    reply: Buffer | Error,
  ): void {
    if (!dst.process.alive) return; // the reset connection fails it (down())
    waiting.delete(p);
    if (this.lost(dst.nodeId, src.nodeId)) {
      this.stats.dropped++;
      return; // the caller times out
    }
    this.world.after(this.delay(), () => settle(p, reply), src.process);
  }
}

function settle(p: PendingRequest, outcome: Buffer | Error): void {
  if (p.settled) return;
  p.settled = true;
  if (outcome instanceof Error) p.reject(outcome);
  else p.resolve(outcome);
}

/** One node's PeerSender over the simulated network, limited to the addresses it knows. */
export class SimPeers implements PeerSender {
  /** Addresses learnt from a join reply before the metadata holds them. */
  private readonly bootAddrs = new Set<number>();
  endpoint: PeerEndpoint | null = null;

  constructor(
    private readonly net: SimNetwork,
    private readonly selfId: number,
    private readonly state: MetadataState,
  ) {}

  learn(nodes: readonly { nodeId: number }[]): void {
    for (const n of nodes) if (n.nodeId !== this.selfId) this.bootAddrs.add(n.nodeId);
  }

  /** Lets the join target be reached before anything is known (walrus-node's --join address). */
  knowJoinTarget(nodeId: number): void {
    this.bootAddrs.add(nodeId);
  }

  private knows(to: number): boolean {
    if (this.state.nodes.has(to)) {
      this.bootAddrs.delete(to);
      return true;
    }
    return this.bootAddrs.has(to);
  }

  send(to: number, payload: Uint8Array): void {
    if (this.endpoint === null || !this.knows(to)) return;
    this.net.send(this.endpoint, to, payload);
  }

  request(to: number, payload: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return this.call(to, payload, timeoutMs, false);
  }

  requestSnapshotChunk(to: number, body: Uint8Array, timeoutMs: number): Promise<Buffer> {
    return this.call(to, body, timeoutMs, true);
  }

  private call(to: number, payload: Uint8Array, timeoutMs: number, chunk: boolean): Promise<Buffer> {
    if (this.endpoint === null || !this.knows(to)) {
      return Promise.reject(new WalrusError(ErrorCode.UNAVAILABLE, `no address known for node ${to}`));
    }
    return this.net.request(this.endpoint, to, payload, timeoutMs, chunk);
  }
}
