/**
 * One schedule of the fault campaign, end to end: a fresh 3-node cluster of real processes
 * (campaign-cluster.ts), writers and a consumer running throughout (campaign-agent.ts), the
 * seed's nemesis steps (nemesis.ts) each followed by heal and recovery, a final heal, and then the
 * history check (log-checker.ts) against the whole topic read back through every node.
 *
 * Checked, each reported as a Violation that names the seed:
 * - lost / misplaced / duplicated acknowledged records, unexpected values, definite failures that
 *   landed, holes or strays in [0, end), nodes that serve different sequences, nodes that cannot
 *   serve the topic after healing;
 * - after kill -9 of the node leading the topic's active segment: an append is acknowledged again
 *   within `availabilityTimeoutMs` (failover), and then, with that node still dead, every record
 *   acknowledged before the kill reads back at its offset (quorum acknowledgement);
 * - after every heal: the cluster is whole again (every node up, one leader, every node a voter)
 *   and takes appends again;
 * - the consumer: cursors never move backwards nor past the end; deliveries match the log.
 *
 * Waits are bounded polls; the only sleeps are how long a fault holds.
 */
import { checkConsumer, checkLog, checkRange, compareReads } from './log-checker.js';
import { type AttemptRecord, type ConsumerEvent, describeConsumerEvent, type Unreadable } from './history.js';
import { CampaignCluster, capabilities, type NetMode } from './campaign-cluster.js';
import {
  describeStep,
  makeSchedule,
  type NemesisKind,
  nemesisKinds,
  type NemesisStep,
  type Role,
  runnableKinds,
  type Schedule,
} from './nemesis.js';
import type { NodeMetrics } from './node-text.js';
import type { TopicInfo } from '../../node/protocol/messages.js';

export interface CampaignOptions {
  readonly seed: number;
  /** Kinds asked for (CAMPAIGN_KINDS); those this machine cannot run are left out and named. */
  readonly kinds: readonly NemesisKind[];
  /** Nemesis steps per schedule (default 3). */
  readonly stepCount?: number;
  /** No new step starts after this much of the schedule has passed (default 60 s). */
  readonly scheduleBudgetMs?: number;
  readonly mode?: NetMode | 'auto';
  /** Progress lines (default: none). */
  readonly log?: (line: string) => void;
  /** WALRUS_MAX_SEGMENT_ENTRIES: small, so segments roll over and spread over the nodes (default 200). */
  readonly segmentEntries?: number;
  /** After kill -9 of the active segment's leader, an append must be acknowledged within this (default 8 s: failover is promised within ~5 s). */
  readonly availabilityTimeoutMs?: number;
  /** After a heal, the cluster must be whole within this (default 30 s). */
  readonly wholeTimeoutMs?: number;
  /** Pause between one writer's appends (default 10 ms). */
  readonly paceMs?: number;
}

export interface Violation {
  readonly kind: string;
  readonly detail: string;
}

export interface ScheduleResult {
  readonly seed: number;
  readonly mode: NetMode;
  readonly schedule: Schedule;
  /** The kinds asked for (the schedule's are those of them this machine runs). */
  readonly requestedKinds: readonly NemesisKind[];
  /** Asked-for kinds this machine could not run, and why. */
  readonly skippedKinds: readonly string[];
  /** What each step did, with the nodes it resolved to. */
  readonly steps: readonly string[];
  readonly violations: readonly Violation[];
  readonly stats: {
    attempts: number;
    acked: number;
    unknown: number;
    failed: number;
    records: number;
    endOffset: number;
    consumerDelivered: number;
    consumerCursor: number;
    /** HTTP appends the gateway joined into shared batches (offsets split back per request). */
    httpJoined: number;
  };
  readonly durationMs: number;
}

const topic = 'campaign';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Up to `max` items and how many more there were. */
function some(items: readonly string[], max = 5): string {
  return items.slice(0, max).join('; ') + (items.length > max ? `; … ${items.length - max} more` : '');
}

class ScheduleRun {
  readonly violations: Violation[] = [];
  readonly steps: string[] = [];
  /** A recovery failed: no further steps; the final phase does what it can. */
  broken = false;
  /** Nodes left out of the cluster on purpose (a wiped node whose removal was refused). */
  readonly abandoned = new Set<number>();
  private readonly started = Date.now();

  constructor(
    readonly cluster: CampaignCluster,
    readonly schedule: Schedule,
    readonly o: Required<Omit<CampaignOptions, 'log' | 'mode' | 'kinds' | 'seed'>> & {
      log: (line: string) => void;
    },
  ) {}

  elapsed(): string {
    return `${((Date.now() - this.started) / 1000).toFixed(1)}s`;
  }

  violation(kind: string, detail: string): void {
    this.violations.push({ kind, detail });
    this.o.log(`  ! ${kind}: ${detail}`);
  }

  private get n(): number {
    return this.cluster.nodes.length;
  }

  private live(): number[] {
    return this.cluster.nodes.filter((n) => this.cluster.isRunning(n.index) && !n.paused).map((n) => n.index);
  }

  private liveAddrs(): string[] {
    const live = this.live();
    return (live.length > 0 ? live : this.cluster.nodes.map((n) => n.index)).map(
      (i) => this.cluster.nodes[i]!.clientAddr,
    );
  }

  private async metrics(index: number): Promise<NodeMetrics | null> {
    if (!this.cluster.isRunning(index) || this.cluster.nodes[index]!.paused) return null;
    try {
      return await this.cluster.ask<NodeMetrics | null>('metrics', {
        addr: this.cluster.nodes[index]!.clientAddr,
      });
    } catch {
      return null;
    }
  }

  private async allMetrics(): Promise<(NodeMetrics | null)[]> {
    return Promise.all(this.cluster.nodes.map((n) => this.metrics(n.index)));
  }

  /** Polls `probe` every 200 ms until it gives a value, or undefined after timeoutMs. */
  private async poll<T>(timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        const v = await probe();
        if (v !== undefined) return v;
      } catch {
        // Try again.
      }
      if (Date.now() > deadline) return undefined;
      await sleep(200);
    }
  }

  /** The Raft leader's index: the id a majority of the nodes names, itself running. */
  async raftLeader(timeoutMs = 15_000): Promise<number | undefined> {
    return this.poll(timeoutMs, async () => {
      const ms = await this.allMetrics();
      const votes = new Map<number, number>();
      for (const m of ms)
        if (m?.current_leader) votes.set(m.current_leader, (votes.get(m.current_leader) ?? 0) + 1);
      for (const [id, count] of votes)
        if (count > this.n / 2 && this.cluster.isRunning(id - 1) && ms[id - 1]?.state === 'Leader')
          return id - 1;
      return undefined;
    });
  }

  async describe(timeoutMs = 10_000): Promise<TopicInfo | undefined> {
    return this.poll(timeoutMs, () =>
      this.cluster.ask<TopicInfo>('describe', { nodes: this.liveAddrs(), topic }, timeoutMs),
    );
  }

  /** The index of the node that leads the topic's active segment (describeTopic). */
  async segmentLeader(): Promise<number | undefined> {
    const info = await this.describe();
    return info === undefined ? undefined : info.leaderNodeId - 1;
  }

  /** Every node up, one leader all agree on, every node a voter and none a learner. */
  async whole(timeoutMs: number): Promise<{ ok: boolean; summary: string }> {
    let summary = '';
    const ok = await this.poll(timeoutMs, async () => {
      const ms = await this.allMetrics();
      summary = ms
        .map((m, i) =>
          m === null
            ? `n${i + 1} down`
            : `n${i + 1} ${m.state} term ${m.current_term} leader ${m.current_leader} voters [${m.membership_config.voters}] learners [${m.membership_config.learners}]`,
        )
        .join(', ');
      const leader = ms[0]?.current_leader ?? null;
      const all = this.cluster.nodes.map((n) => n.nodeId).join(',');
      const agreed = ms.every(
        (m) =>
          m !== null &&
          m.current_leader === leader &&
          [...m.membership_config.voters].sort((a, b) => a - b).join(',') === all &&
          m.membership_config.learners.length === 0,
      );
      return leader !== null && agreed ? true : undefined;
    });
    return { ok: ok === true, summary };
  }

  /** True once an append sent at or after `sinceMs` was acknowledged. */
  async ackedSince(sinceMs: number, timeoutMs: number): Promise<number | undefined> {
    return this.poll(timeoutMs, async () => {
      const p = await this.cluster.ask<{ ackedSince: number }>('progress', { sinceMs });
      return p.ackedSince > 0 ? Date.now() - sinceMs : undefined;
    });
  }

  /** A node of `role`, `pick` choosing among several. */
  async resolve(role: Role, pick: number): Promise<number | undefined> {
    if (role === 'segment-leader') return this.segmentLeader();
    const leader = await this.raftLeader();
    if (role === 'raft-leader' || leader === undefined) return leader;
    const followers = this.live().filter((i) => i !== leader);
    return followers[Math.floor(pick * followers.length)];
  }

  private others(index: number): number[] {
    return this.cluster.nodes.map((n) => n.index).filter((i) => i !== index);
  }

  /**
   * kill -9 of node `index`. If it led the active segment: an append must be acknowledged again
   * while it is dead, and then every record acknowledged before the kill must read back.
   */
  private async killAndCheck(index: number, holdMs: number): Promise<string> {
    const segmentLeader = await this.segmentLeader();
    const killMs = Date.now();
    await this.cluster.kill(index, 'SIGKILL');
    let what = `kill -9 n${index + 1}`;
    if (segmentLeader === index) {
      what += ' (active segment leader)';
      const after = await this.ackedSince(killMs, this.o.availabilityTimeoutMs);
      if (after === undefined) {
        this.violation(
          'unavailable',
          `no append acknowledged within ${this.o.availabilityTimeoutMs} ms of kill -9 of n${index + 1}, the leader of the topic's active segment`,
        );
      } else {
        what += `, writable again after ${after} ms`;
        await this.readableWhileDead(killMs, index);
      }
    } else {
      await sleep(holdMs);
    }
    await this.restart(index);
    return what;
  }

  /** Quorum acknowledgement: with n<dead> still down, everything acknowledged before the kill reads back. */
  private async readableWhileDead(killMs: number, dead: number): Promise<void> {
    const acked = await this.cluster.ask<AttemptRecord[]>('acked', { beforeMs: killMs });
    try {
      const read = await this.cluster.ask<{ records: { offset: number; value: string }[] }>(
        'readAll',
        { nodes: this.liveAddrs(), topic, pinned: false, timeoutMs: 10_000 },
        20_000,
      );
      const c = checkLog(
        acked.map((a) => ({ value: a.value, offset: a.offset! })),
        read.records,
      );
      if (c.lost.length + c.misplaced.length > 0)
        this.violation(
          'unreadable-during-failover',
          `with n${dead + 1} dead, ${c.lost.length} of ${acked.length} records acknowledged before its kill are missing (${some(c.lost)}), ${c.misplaced.length} misplaced (${some(c.misplaced)})`,
        );
    } catch (error) {
      this.violation(
        'unreadable-during-failover',
        `with n${dead + 1} dead, the ${acked.length} records acknowledged before its kill could not be read: ${(error as Error).message}`,
      );
    }
  }

  private async restart(index: number, join?: string): Promise<boolean> {
    try {
      await this.cluster.startNode(index, join);
      return true;
    } catch (error) {
      this.violation(
        'recovery',
        `n${index + 1} did not start again: ${(error as Error).message.slice(0, 600)}`,
      );
      return false;
    }
  }

  /** Stop, wipe, remove-node, start again with --join: docs/cluster.md "A node lost its data directory". */
  private async wipe(index: number): Promise<string> {
    const node = this.cluster.nodes[index]!;
    await this.cluster.kill(index, 'SIGKILL');
    this.cluster.wipe(index);
    let last = '';
    const removed = await this.poll(10_000, async () => {
      const via = this.live()[0];
      if (via === undefined) return undefined;
      const r = await this.cluster.ask<{ code: number | null; stdout: string; stderr: string }>(
        'cli',
        {
          args: [
            '--addr',
            this.cluster.nodes[via]!.clientAddr,
            '--timeout-ms',
            '5000',
            'remove-node',
            String(node.nodeId),
          ],
          timeoutMs: 15_000,
        },
        20_000,
      );
      last = r.code === 0 ? r.stdout : `exit ${r.code}: ${r.stderr || r.stdout}`;
      if (r.code === 0) return true;
      // Refusals that waiting does not change.
      if (/CONFLICT|BAD_CONF_CHANGE|IDENTITY_MISMATCH|BAD_REQUEST/.test(r.stderr)) return false;
      return undefined;
    });
    if (removed !== true) {
      this.violation(
        'recovery',
        `wiped n${node.nodeId} could not be removed (remove-node ${node.nodeId}): ${last}`,
      );
      this.abandoned.add(index);
      this.broken = true;
      return `wipe n${node.nodeId}: remove-node refused`;
    }
    const leader = await this.raftLeader();
    const join = this.cluster.nodes[leader ?? this.live()[0] ?? 0]!.raftAddr;
    const ok = await this.restart(index, join);
    // The wiped node is back only once it is a voter again: until its promotion the cluster has two
    // voters, and the next fault could take a Raft majority, which no failover can make up for.
    const whole = ok ? await this.whole(this.o.wholeTimeoutMs) : { ok: false, summary: 'not restarted' };
    if (ok && !whole.ok)
      this.violation(
        'not-whole',
        `wiped n${node.nodeId} rejoined but was not a voter within ${this.o.wholeTimeoutMs} ms: ${whole.summary}`,
      );
    // ... and it is repaired back to full replication: every segment of the topic has three copies
    // again (the active one, opened while two voters were left, rolls over; sealed ones are copied).
    if (ok && whole.ok) {
      const repaired = await this.poll(this.o.wholeTimeoutMs, async () => {
        const info = await this.describe(2_000);
        return info?.segments.every((s) => s.replicas.length >= 3) ? true : undefined;
      });
      if (repaired !== true)
        this.violation(
          'not-whole',
          `wiped n${node.nodeId}: the topic was not back to three copies of every segment within ${this.o.wholeTimeoutMs} ms`,
        );
    }
    return `wipe n${node.nodeId}: removed (${last}), rejoined via ${join}${ok ? '' : ' FAILED'}`;
  }

  private async step(step: NemesisStep): Promise<string> {
    const c = this.cluster;
    const unresolved = (what: string): string => {
      this.violation('unavailable', `${step.kind}: could not find ${what} before the step`);
      return `${step.kind}: no ${what}`;
    };
    switch (step.kind) {
      case 'kill-segment-leader': {
        const i = await this.segmentLeader();
        if (i === undefined) return unresolved('the active segment leader');
        return this.killAndCheck(i, step.holdMs);
      }
      case 'kill-raft-leader': {
        const i = await this.raftLeader();
        if (i === undefined) return unresolved('the Raft leader');
        return `raft leader: ${await this.killAndCheck(i, step.holdMs)}`;
      }
      case 'kill-follower': {
        const i = await this.resolve('follower', step.pick);
        if (i === undefined) return unresolved('a follower');
        return `follower: ${await this.killAndCheck(i, step.holdMs)}`;
      }
      case 'pause': {
        const i = await this.resolve(step.role, step.pick);
        if (i === undefined) return unresolved(`the ${step.role}`);
        c.pause(i);
        await sleep(step.holdMs);
        c.resume(i);
        return `SIGSTOP n${i + 1} (${step.role}) ${step.holdMs} ms, SIGCONT`;
      }
      case 'partition-minority': {
        const i = await this.resolve('follower', step.pick);
        if (i === undefined) return unresolved('a follower');
        c.isolate(i);
        await sleep(step.holdMs);
        c.heal();
        return `isolate follower n${i + 1} ${step.holdMs} ms`;
      }
      case 'partition-majority': {
        const i = await this.raftLeader();
        if (i === undefined) return unresolved('the Raft leader');
        c.isolate(i);
        await sleep(step.holdMs);
        c.heal();
        return `isolate raft leader n${i + 1} (the majority elects without it) ${step.holdMs} ms`;
      }
      case 'partition-one-way': {
        const i = await this.resolve(step.role, step.pick);
        if (i === undefined) return unresolved(`the ${step.role}`);
        const others = this.others(i);
        let what: string;
        if (step.variant === 'deaf') {
          for (const o of others) c.drop(i, o);
          what = `n${i + 1} (${step.role}) hears no peer`;
        } else if (step.variant === 'mute') {
          for (const o of others) c.drop(o, i);
          what = `no peer hears n${i + 1} (${step.role})`;
        } else {
          const o = others[Math.floor(step.pick * 1000) % others.length]!;
          c.drop(o, i);
          what = `n${o + 1} does not hear n${i + 1} (${step.role})`;
        }
        await sleep(step.holdMs);
        c.heal();
        return `one-way: ${what} ${step.holdMs} ms`;
      }
      case 'partition-segment-leader': {
        const s = await this.segmentLeader();
        if (s === undefined) return unresolved('the active segment leader');
        let what: string;
        if (step.variant === 'all') {
          c.isolate(s);
          what = `n${s + 1} cut from every peer, clients still reach it`;
        } else {
          // Cut from the other replicas but one: it still reaches the Raft leader (or, leading Raft itself, one follower).
          const leader = await this.raftLeader();
          const others = this.others(s);
          const keep =
            leader !== undefined && leader !== s ? leader : others[Math.floor(step.pick * others.length)]!;
          c.isolate(
            s,
            others.filter((o) => o !== keep),
          );
          what = `n${s + 1} cut from ${others
            .filter((o) => o !== keep)
            .map((o) => `n${o + 1}`)
            .join(',')}, still reaches n${keep + 1} and clients`;
        }
        await sleep(step.holdMs);
        c.heal();
        return `segment leader: ${what} ${step.holdMs} ms`;
      }
      case 'restart-all': {
        const signal = step.variant === 'SIGTERM' ? 'SIGTERM' : 'SIGKILL';
        await Promise.all(c.nodes.map((n) => c.kill(n.index, signal)));
        await sleep(Math.min(step.holdMs, 1_000));
        for (const n of c.nodes) await this.restart(n.index);
        return `restart all (${signal})`;
      }
      case 'wipe': {
        const i = await this.resolve(step.role, step.pick);
        if (i === undefined) return unresolved(`the ${step.role}`);
        return `${step.role}: ${await this.wipe(i)}`;
      }
      case 'disk-full': {
        const i = this.schedule.diskNode;
        if (i === null || c.nodes[i]!.tmpfsBytes === null) return 'disk-full: no tmpfs node (skipped)';
        const s = await this.segmentLeader();
        const bytes = c.fillDisk(i);
        await sleep(step.holdMs);
        const died = !c.isRunning(i);
        c.freeDisk(i);
        if (died) await this.restart(i);
        return `disk of n${i + 1}${s === i ? ' (active segment leader)' : ''} full (${bytes} bytes of ballast) ${step.holdMs} ms${died ? ', it exited, restarted' : ''}`;
      }
    }
  }

  /**
   * Heal everything (partitions, pauses, full disks, dead nodes), then: the cluster is whole within
   * wholeTimeoutMs, and an append is acknowledged within 15 s after that.
   */
  async recover(after: string): Promise<void> {
    const c = this.cluster;
    if (c.mode === 'netns') c.heal();
    for (const n of c.nodes) {
      c.resume(n.index);
      if (n.tmpfsBytes !== null) c.freeDisk(n.index);
    }
    for (const n of c.nodes)
      if (!c.isRunning(n.index) && !this.abandoned.has(n.index)) await this.restart(n.index);
    const whole = await this.whole(this.broken ? 5_000 : this.o.wholeTimeoutMs);
    if (!whole.ok) {
      if (!this.broken)
        this.violation(
          'not-whole',
          `${after}: the cluster was not whole within ${this.o.wholeTimeoutMs} ms of healing: ${whole.summary}`,
        );
      this.broken = true;
    }
    const since = Date.now();
    const limitMs = this.broken ? 5_000 : 15_000;
    const took = await this.ackedSince(since, limitMs);
    if (took === undefined)
      this.violation('unavailable', `${after}: no append acknowledged within ${limitMs / 1000} s of healing`);
  }

  async run(): Promise<ScheduleResult['stats']> {
    const c = this.cluster;
    const first = await this.whole(this.o.wholeTimeoutMs);
    if (!first.ok) throw new Error(`the new cluster never became whole: ${first.summary}`);
    await c.ask('start', {
      nodes: c.clientAddrs,
      topic,
      binaryWriters: 2,
      httpWriters: 1,
      consumer: true,
      paceMs: this.o.paceMs,
    });
    if ((await this.ackedSince(0, 15_000)) === undefined)
      throw new Error('no append was acknowledged before the faults');
    for (const [i, step] of this.schedule.steps.entries()) {
      const label = `step ${i + 1} ${describeStep(step)}`;
      if (this.broken) {
        this.steps.push(`${label}: not run (an earlier recovery failed)`);
        continue;
      }
      if (Date.now() - this.started > this.o.scheduleBudgetMs) {
        this.steps.push(`${label}: not run (schedule time budget)`);
        continue;
      }
      this.o.log(`  [${this.elapsed()}] ${label}`);
      const did = await this.step(step);
      this.steps.push(`${label}: ${did}`);
      this.o.log(`  [${this.elapsed()}]   ${did}`);
      await this.recover(`after step ${i + 1} (${step.kind})`);
    }
    this.o.log(`  [${this.elapsed()}] final heal and check`);
    await this.recover('final heal');
    const history = await c.ask<{ attempts: AttemptRecord[]; consumer: ConsumerEvent[]; httpJoined: number }>(
      'stop',
      {},
      30_000,
    );
    return this.check(history);
  }

  /** Waits (at most 15 s) until the topic's end, as describeTopic gives it, has not moved for 2 s. */
  private async quiesce(): Promise<void> {
    let last = -1;
    let since = Date.now();
    const settled = await this.poll(this.broken ? 5_000 : 15_000, async () => {
      const info = await this.cluster.ask<TopicInfo>('describe', { nodes: this.liveAddrs(), topic }, 5_000);
      if (info.endOffset !== last) {
        last = info.endOffset;
        since = Date.now();
        return undefined;
      }
      return Date.now() - since >= 2_000 ? true : undefined;
    });
    if (settled === undefined)
      this.steps.push(`the topic's end did not settle before the final reads (last seen ${last})`);
  }

  /** Reads the topic through every node and checks the history against it. */
  private async check(history: {
    attempts: AttemptRecord[];
    consumer: ConsumerEvent[];
    httpJoined: number;
  }): Promise<ScheduleResult['stats']> {
    const c = this.cluster;
    type Read = {
      label: string;
      records: { offset: number; value: string }[];
      endOffset: number;
      startOffset: number;
      unreadable: Unreadable[];
      endUncertain: { from: number; why: string } | null;
      /** Set when nothing could be read through this node. */
      failed?: string;
    };
    const readEvery = async (): Promise<Read[]> => {
      const out: Read[] = [];
      for (const n of c.nodes) {
        if (!c.isRunning(n.index)) continue;
        try {
          const r = await c.ask<Omit<Read, 'label'>>(
            'readAll',
            { nodes: [n.clientAddr], topic, pinned: true, timeoutMs: 20_000 },
            40_000,
          );
          out.push({ label: `n${n.nodeId}`, ...r });
        } catch (error) {
          out.push({
            label: `n${n.nodeId}`,
            records: [],
            endOffset: 0,
            startOffset: 0,
            unreadable: [],
            endUncertain: null,
            failed: (error as Error).message.slice(0, 300),
          });
        }
      }
      return out;
    };
    // An append whose outcome the writer never learnt may still land after the writers stopped (a
    // relayed request held up by a partition): the reads start once the end has stopped moving,
    // and are taken again if the nodes' ends still differ.
    await this.quiesce();
    let reads = await readEvery();
    if (new Set(reads.map((r) => r.endOffset)).size > 1) {
      const ends = reads.map((r) => `${r.label} ${r.endOffset}`).join(', ');
      await this.quiesce();
      reads = await readEvery();
      this.steps.push(`final reads taken again: the ends differed (${ends})`);
    }
    for (const n of c.nodes)
      if (!c.isRunning(n.index))
        this.violation('not-whole', `n${n.nodeId} is not running at the end: its copy cannot be read`);
    for (const r of reads) {
      if (r.failed !== undefined) {
        this.violation('unreadable', `the topic could not be read through ${r.label}: ${r.failed}`);
        continue;
      }
      if (r.endUncertain !== null)
        this.violation(
          'unreadable',
          `through ${r.label}, nothing from offset ${r.endUncertain.from} on can be read: ${r.endUncertain.why}`,
        );
      for (const u of r.unreadable)
        this.violation(
          'unreadable',
          `through ${r.label}, offsets [${u.from}, ${u.to}) cannot be read: ${u.error.slice(0, 300)}`,
        );
    }
    reads = reads.filter((r) => r.failed === undefined);
    const attempts = history.attempts;
    const stats = {
      attempts: attempts.length,
      acked: attempts.filter((a) => a.outcome === 'ack').length,
      unknown: attempts.filter((a) => a.outcome === 'unknown').length,
      failed: attempts.filter((a) => a.outcome === 'fail').length,
      records: 0,
      endOffset: 0,
      consumerDelivered: history.consumer.reduce(
        (s, e) => s + (e.kind === 'deliver' ? e.records.length : 0),
        0,
      ),
      consumerCursor: history.consumer.reduce((s, e) => (e.kind === 'cursor' ? Math.max(s, e.offset) : s), 0),
      httpJoined: history.httpJoined,
    };
    // The most complete read is the reference the others are compared with.
    reads.sort((a, b) => b.records.length - a.records.length);
    const read = reads[0];
    if (read === undefined) {
      this.violation(
        'unreadable',
        'no node could serve the topic at the end: nothing to check the history against',
      );
      return stats;
    }
    stats.records = read.records.length;
    stats.endOffset = read.endOffset;
    const log = checkLog(
      attempts.map((a) => ({
        value: a.value,
        ...(a.offset === undefined ? {} : { offset: a.offset }),
        ...(a.error === undefined ? {} : { error: a.error }),
        definite: a.outcome === 'fail',
      })),
      read.records,
    );
    const unreadableAt = (o: number): boolean => read.unreadable.some((u) => u.from <= o && o < u.to);
    /** Offsets whose record the read could learn (not in a segment it could not read). */
    const known = (o: number): boolean =>
      !unreadableAt(o) && (read.endUncertain === null || o < read.endUncertain.from);
    const report = (kind: string, items: readonly (string | number)[], what: string): void => {
      if (items.length > 0) this.violation(kind, `${items.length} ${what}: ${some(items.map(String))}`);
    };
    report(
      'lost',
      log.lost,
      `of ${log.acknowledged} acknowledged records missing (read through ${read.label}${read.unreadable.length > 0 ? ', some offsets unreadable' : ''})`,
    );
    report('misplaced', log.misplaced, 'acknowledged records at another offset');
    report('duplicated', log.duplicated, 'values found more than once');
    report('unexpected', log.unexpected, 'values nobody wrote');
    report('failed-present', log.failedPresent, 'values whose append failed definitely, found all the same');
    report('holes', log.holes.filter(known), 'offsets between records that hold nothing');
    const range = checkRange(read.records, read.endOffset, 0);
    report(
      'holes',
      range.missing.filter(known),
      `offsets in [0, ${read.endOffset}) with no record (read through ${read.label})`,
    );
    report('stray', range.stray, 'records out of place');
    report('divergent', compareReads(reads), 'nodes serve a different sequence');
    for (const r of reads.slice(1))
      if (r.endOffset !== read.endOffset)
        this.violation(
          'divergent',
          `${r.label} says the end is ${r.endOffset}, ${read.label} ${read.endOffset}`,
        );
    const consumer = checkConsumer(
      history.consumer,
      read.records,
      read.endUncertain === null ? read.endOffset : null,
      known,
    );
    const firstBack = /^#(\d+) /.exec(consumer.backwards[0] ?? '');
    if (firstBack !== null) {
      const at = Number(firstBack[1]);
      const from = Math.max(0, at - 12);
      const context = history.consumer
        .slice(from, at + 1)
        .map((e, k) => `      ${describeConsumerEvent(e, from + k)}`)
        .join('\n');
      this.violation(
        'cursor-backwards',
        `${consumer.backwards.length} times the consumer cursor moves backwards: ${some(consumer.backwards)}\n    the consumer's events up to the first:\n${context}`,
      );
    }
    report('cursor-beyond-end', consumer.beyondEnd, 'committed cursors past the end');
    report('consumer-mismatch', consumer.mismatched, 'delivered records the log does not hold');
    report('consumer-gap', consumer.gaps, 'deliveries with gaps');
    return stats;
  }
}

/** The schedule a seed gives on this machine: the asked-for kinds it can run, in the mode it can run. */
export function planSchedule(options: Pick<CampaignOptions, 'seed' | 'kinds' | 'stepCount' | 'mode'>): {
  mode: NetMode;
  root: boolean;
  skipped: string[];
  schedule: Schedule;
} {
  const caps = capabilities();
  const mode: NetMode = options.mode === undefined || options.mode === 'auto' ? caps.mode : options.mode;
  const { kinds, skipped } = runnableKinds(options.kinds, { partitions: mode === 'netns', root: caps.root });
  return {
    mode,
    root: caps.root,
    skipped,
    schedule: makeSchedule(options.seed, kinds, options.stepCount ?? 3),
  };
}

/** Runs one schedule on a fresh cluster; never leaves a process, namespace or mount behind. */
export async function runSchedule(options: CampaignOptions): Promise<ScheduleResult> {
  const started = Date.now();
  const { mode, root, skipped, schedule } = planSchedule(options);
  const o = {
    stepCount: options.stepCount ?? 3,
    scheduleBudgetMs: options.scheduleBudgetMs ?? 60_000,
    segmentEntries: options.segmentEntries ?? 200,
    availabilityTimeoutMs: options.availabilityTimeoutMs ?? 8_000,
    wholeTimeoutMs: options.wholeTimeoutMs ?? 30_000,
    paceMs: options.paceMs ?? 10,
    log: options.log ?? (() => {}),
  };
  const empty = {
    attempts: 0,
    acked: 0,
    unknown: 0,
    failed: 0,
    records: 0,
    endOffset: 0,
    consumerDelivered: 0,
    consumerCursor: 0,
    httpJoined: 0,
  };
  let cluster: CampaignCluster | undefined;
  let run: ScheduleRun | undefined;
  let stats = empty;
  const harness: Violation[] = [];
  try {
    cluster = await CampaignCluster.start({
      mode,
      nodeCount: 3,
      env: { WALRUS_MAX_SEGMENT_ENTRIES: String(o.segmentEntries) },
      tmpfsNode: root ? schedule.diskNode : null,
    });
    run = new ScheduleRun(cluster, schedule, o);
    stats = await run.run();
  } catch (error) {
    harness.push({ kind: 'harness', detail: (error as Error).stack?.slice(0, 1500) ?? String(error) });
    o.log(`  ! harness: ${(error as Error).message}`);
  } finally {
    const failed = harness.length > 0 || (run?.violations.length ?? 0) > 0;
    if (failed && cluster !== undefined) {
      for (const n of cluster.nodes) o.log(`  --- n${n.nodeId} log tail ---\n${n.logTail.slice(-1500)}`);
    }
    await cluster?.destroy();
  }
  return {
    seed: options.seed,
    mode,
    schedule,
    requestedKinds: options.kinds,
    skippedKinds: skipped,
    steps: run?.steps ?? [],
    violations: [...(run?.violations ?? []), ...harness],
    stats,
    durationMs: Date.now() - started,
  };
}

/** How to replay one schedule: the seed, and the kinds and step count that shaped it. */
export function replayCommand(r: ScheduleResult): string {
  const all = r.requestedKinds.length === nemesisKinds.length;
  const env = all ? '' : `CAMPAIGN_KINDS=${r.requestedKinds.join(',')} `;
  return `${env}node dist/test/fault/campaign.js --seed ${r.seed} --steps ${r.schedule.steps.length} --mode ${r.mode}`;
}

/** One line per schedule. */
export function summaryLine(r: ScheduleResult): string {
  const s = r.stats;
  const verdict = r.violations.length === 0 ? 'ok  ' : 'FAIL';
  const kinds = [...new Set(r.violations.map((v) => v.kind))].join(',');
  return (
    `seed ${String(r.seed).padStart(4)} ${verdict} ${(r.durationMs / 1000).toFixed(1).padStart(5)}s ${r.mode} ` +
    `[${r.schedule.steps.map((x) => x.kind).join(' > ')}] acked ${s.acked} unknown ${s.unknown} failed ${s.failed} ` +
    `records ${s.records} consumed ${s.consumerDelivered} joined ${s.httpJoined}${kinds === '' ? '' : ` violations: ${kinds}`}`
  );
}

/** Everything needed to understand and replay a failing schedule. */
export function failureReport(r: ScheduleResult): string {
  return [
    `seed ${r.seed} (${r.mode}): ${r.violations.length} violation(s)`,
    'nemesis steps:',
    ...r.steps.map((s) => `  ${s}`),
    'violations:',
    ...r.violations.map((v) => `  seed ${r.seed} ${v.kind}: ${v.detail}`),
    ...(r.skippedKinds.length > 0 ? [`kinds not run here: ${r.skippedKinds.join('; ')}`] : []),
    `replay: ${replayCommand(r)}`,
  ].join('\n');
}
