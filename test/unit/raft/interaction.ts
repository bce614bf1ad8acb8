/**
 * A small interpreter for data-driven Raft scripts (the idea of etcd-raft's interaction tests):
 * each block is a command, a `----` line, and the expected output. Messages wait in a pending
 * queue until `deliver-msgs` or `stabilize`, so scripts control interleavings exactly.
 */
import assert from 'node:assert/strict';
import {
  type ConfChangeType,
  decodeConfEntry,
  type Entry,
  EntryKind,
  MemoryStorage,
  type Message,
  makeRaftConfig,
  Prng,
  RaftCore,
} from '../../../node/raft/index.js';
import { dec, enc, makeConf, persist, type TestNode } from './harness.js';

export interface Block {
  readonly command: string;
  readonly expected: string;
}

/** Parses "cmd a b k=v k2=(1,2)" into positional args and options. */
function parseCommand(line: string): { name: string; args: string[]; opts: Record<string, string> } {
  const parts = line.trim().split(/\s+/);
  const name = parts.shift()!;
  const args: string[] = [];
  const opts: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf('=');
    if (eq > 0) opts[p.slice(0, eq)] = p.slice(eq + 1);
    else args.push(p);
  }
  return { name, args, opts };
}

const idList = (s: string | undefined): number[] =>
  s === undefined || s === '()' ? [] : s.replace(/[()]/g, '').split(',').map(Number);

export function describeEntry(e: Entry): string {
  if (e.kind === EntryKind.Conf) {
    const d = decodeConfEntry(e.data);
    return `${e.term}/${e.index} Conf ${d?.change.type} ${d?.change.nodeId} → voters=(${d?.conf.voters}) learners=(${d?.conf.learners})`;
  }
  return `${e.term}/${e.index} ${e.data.length === 0 ? 'empty' : JSON.stringify(dec(e.data))}`;
}

export function describeMessage(m: Message): string {
  const parts = [`${m.from}->${m.to} ${m.type} term=${m.term}`];
  switch (m.type) {
    case 'App':
      parts.push(`prev=${m.logTerm}/${m.index} commit=${m.commit}`);
      if (m.entries.length > 0) parts.push(`entries=[${m.entries.map(describeEntry).join(', ')}]`);
      break;
    case 'AppResp':
      parts.push(m.reject ? `reject index=${m.index} hint=${m.logTerm}/${m.rejectHint}` : `index=${m.index}`);
      break;
    case 'Heartbeat':
      parts.push(`commit=${m.commit}${m.index > 0 ? ` read=${m.index}` : ''}`);
      break;
    case 'HeartbeatResp':
      if (m.index > 0) parts.push(`read=${m.index}`);
      break;
    case 'Vote':
    case 'PreVote':
      parts.push(`last=${m.logTerm}/${m.index}${m.transfer ? ' transfer' : ''}`);
      break;
    case 'VoteResp':
    case 'PreVoteResp':
      if (m.reject) parts.push('reject');
      break;
    case 'Snap':
      parts.push(
        `snapshot=${m.snapshot?.meta.term}/${m.snapshot?.meta.index} voters=(${m.snapshot?.meta.conf.voters})`,
      );
      break;
    default:
      break;
  }
  return parts.join(' ');
}

export class InteractionEnv {
  private readonly nodes = new Map<number, TestNode>();
  private pending: Message[] = [];
  private readonly cut = new Set<string>();

  run(command: string): string {
    const out: string[] = [];
    const { name, args, opts } = parseCommand(command);
    const id = Number(args[0]);
    switch (name) {
      case 'add-nodes': {
        const count = Number(args[0]);
        for (let k = 0; k < count; k++) {
          const nid = this.nodes.size + 1;
          const storage = new MemoryStorage(makeConf(idList(opts['voters']), idList(opts['learners'])));
          const cfg = makeRaftConfig({
            id: nid,
            electionTick: Number(opts['election'] ?? 10),
            heartbeatTick: Number(opts['heartbeat'] ?? 1),
            preVote: opts['prevote'] === 'true',
            checkQuorum: opts['checkquorum'] === 'true',
            inflightMsgCountMax: Number(opts['inflight'] ?? 256),
          });
          this.nodes.set(nid, {
            core: new RaftCore(cfg, storage, new Prng(nid)),
            storage,
            applied: [],
            reads: [],
          });
        }
        out.push(`nodes: ${[...this.nodes.keys()].join(' ')}`);
        break;
      }
      case 'campaign':
        this.node(id).core.campaign();
        break;
      case 'tick':
        for (let k = 0; k < Number(args[1] ?? 1); k++) this.node(id).core.tick();
        break;
      case 'propose':
        this.tryRun(out, () => this.node(id).core.propose(enc(args[1] ?? '')));
        break;
      case 'propose-conf-change':
        this.tryRun(out, () =>
          this.node(id).core.proposeConfChange({ type: args[1] as ConfChangeType, nodeId: Number(args[2]) }),
        );
        break;
      case 'read-index':
        this.tryRun(out, () => this.node(id).core.readIndex(Number(args[1])));
        break;
      case 'transfer-leadership':
        this.tryRun(out, () => this.node(Number(opts['from'])).core.transferLeadership(Number(opts['to'])));
        break;
      case 'compact': {
        const n = this.node(id);
        this.tryRun(out, () => {
          const snap = n.core.compact(Number(args[1]), enc(`state@${args[1]}`));
          n.storage.compact(snap);
          out.push(`compacted ${id} at ${snap.meta.term}/${snap.meta.index}`);
        });
        break;
      }
      case 'isolate':
        for (const other of this.nodes.keys()) {
          if (other === id) continue;
          this.cut.add(`${id}>${other}`);
          this.cut.add(`${other}>${id}`);
        }
        break;
      case 'recover':
        this.cut.clear();
        break;
      case 'process-ready':
        for (const n of args.length > 0 ? args.map((a) => this.node(Number(a))) : [...this.nodes.values()]) {
          this.processReady(n, out);
        }
        break;
      case 'deliver-msgs':
        this.deliver(out, opts['type']);
        break;
      case 'stabilize':
        for (let round = 0; round < 1000; round++) {
          let any = false;
          for (const n of this.nodes.values()) any = this.processReady(n, out) || any;
          if (this.pending.length === 0 && !any) break;
          this.deliver(out);
          assert.ok(round < 999, 'stabilize did not settle');
        }
        break;
      case 'raft-state':
        for (const n of this.nodes.values()) {
          const s = n.core.status();
          out.push(
            `${s.id}: ${s.state} term=${s.term} vote=${s.vote} lead=${s.leaderId} commit=${s.commit} last=${s.lastIndex} applied=${s.applied} voters=(${s.voters}) learners=(${s.learners})`,
          );
        }
        break;
      case 'raft-log': {
        const log = this.node(id).core.log;
        const first = log.firstIndex();
        if (first > 1) out.push(`snapshot ${log.term(first - 1)}/${first - 1}`);
        for (const e of log.slice(first, log.lastIndex() + 1, Number.MAX_SAFE_INTEGER))
          out.push(describeEntry(e));
        break;
      }
      case 'status': {
        const s = this.node(id).core.status();
        for (const [pid, p] of Object.entries(s.progress))
          out.push(`${pid}: ${p.state} match=${p.match} next=${p.next}`);
        break;
      }
      default:
        assert.fail(`unknown command ${name}`);
    }
    return out.join('\n');
  }

  private node(id: number): TestNode {
    const n = this.nodes.get(id);
    assert.ok(n, `no node ${id}`);
    return n;
  }

  private tryRun(out: string[], f: () => unknown): void {
    try {
      f();
    } catch (err) {
      out.push(`error: ${(err as { code?: string }).code}`);
    }
  }

  private processReady(n: TestNode, out: string[]): boolean {
    const rd = n.core.ready();
    if (!rd) return false;
    const id = n.core.id;
    if (rd.hardState)
      out.push(
        `${id} persist HardState term=${rd.hardState.term} vote=${rd.hardState.vote} commit=${rd.hardState.commit}`,
      );
    if (rd.snapshot) out.push(`${id} persist Snapshot ${rd.snapshot.meta.term}/${rd.snapshot.meta.index}`);
    for (const e of rd.entries) out.push(`${id} persist ${describeEntry(e)}`);
    persist(n, rd);
    this.pending.push(...rd.messages);
    for (const e of rd.committedEntries) out.push(`${id} apply ${describeEntry(e)}`);
    for (const r of rd.readStates) out.push(`${id} read-state index=${r.index} ctx=${String(r.ctx)}`);
    n.applied.push(...rd.committedEntries);
    n.reads.push(...rd.readStates);
    n.core.advance(rd);
    return true;
  }

  private deliver(out: string[], onlyType?: string): void {
    const now = this.pending;
    this.pending = [];
    for (const m of now) {
      if (onlyType !== undefined && m.type !== onlyType) {
        this.pending.push(m);
        continue;
      }
      if (this.cut.has(`${m.from}>${m.to}`)) {
        out.push(`dropped: ${describeMessage(m)}`);
        continue;
      }
      const n = this.nodes.get(m.to);
      if (!n) continue;
      out.push(describeMessage(m));
      n.core.step(m);
    }
  }
}

/** Splits a script into blocks: command line(s), "----", output up to a blank line. */
export function parseScript(text: string): Block[] {
  const blocks: Block[] = [];
  const lines = text.split('\n');
  let k = 0;
  while (k < lines.length) {
    const line = lines[k]!;
    if (line.trim() === '' || line.startsWith('#')) {
      k++;
      continue;
    }
    const command = line;
    k++;
    assert.equal(lines[k], '----', `expected ---- after "${command}"`);
    k++;
    const out: string[] = [];
    while (k < lines.length && lines[k] !== '') out.push(lines[k++]!);
    blocks.push({ command, expected: out.join('\n') });
  }
  return blocks;
}

/** Re-renders a script with actual outputs (comments are kept before their command). */
export function renderScript(text: string, actual: readonly string[]): string {
  const lines = text.split('\n');
  const out: string[] = [];
  let k = 0;
  let b = 0;
  while (k < lines.length) {
    const line = lines[k]!;
    if (line.trim() === '' || line.startsWith('#')) {
      if (line.startsWith('#')) out.push(line);
      k++;
      continue;
    }
    out.push(line, '----');
    if (actual[b]) out.push(actual[b]!);
    out.push('');
    b++;
    k += 2;
    while (k < lines.length && lines[k] !== '') k++;
  }
  return `${out.join('\n').trimEnd()}\n`;
}
