/**
 * What clients were told, and the invariants it must keep (checked as each reply arrives, and by
 * the final read-back):
 *
 * - AckedAppendStays: every acknowledged record is read back at its offset with its bytes (unless
 *   retention passed it); each offset ever read keeps its bytes; a value (unique per record) is
 *   never at two offsets; an acknowledgement covers exactly its records.
 * - NoEmptyReadBelowAckedEnd: a successful read at an offset below the end acknowledged before the
 *   read was sent returns records (an empty read tells a consumer "nothing more" and stalls it).
 * - TopicNotLost: no answer says TOPIC_NOT_FOUND for a topic whose creation was acknowledged
 *   before the request was sent and whose deletion no client ever asked for.
 * - CursorNotStale: a consumer get / read-next sent after a cursor commit was acknowledged sees
 *   that commit or a later one: the cursor it reports must be the value of a commit that could be
 *   the latest when it answered (a commit is out once another, acknowledged before the read was
 *   sent, started after it was acknowledged; commits with unknown outcome are never out), or the
 *   topic's start when retention passed it.
 */
import { InvariantViolation } from '../invariants.js';

export function violation(invariant: string, detail: string): never {
  throw new InvariantViolation(invariant, detail);
}

/**
 * One cursor write: a commit (its value known), or a read-next's auto-commit, whose value is known
 * only once it is answered (until then it may move the cursor forward, from whatever value it
 * reads, by up to one read's records).
 */
interface CursorWrite {
  value: number | null;
  readonly sentAt: number;
  /** When it was acknowledged; Infinity while unknown (in flight, failed or timed out). */
  ackedAt: number;
}

export class ConsumerModel {
  private writes: CursorWrite[] = [];

  constructor(private readonly stepMax: number) {}

  write(offset: number, sentAt: number): CursorWrite {
    const w: CursorWrite = { value: offset, sentAt, ackedAt: Number.POSITIVE_INFINITY };
    this.writes.push(w);
    return w;
  }

  writeAuto(sentAt: number): CursorWrite {
    const w: CursorWrite = { value: null, sentAt, ackedAt: Number.POSITIVE_INFINITY };
    this.writes.push(w);
    return w;
  }

  settle(w: CursorWrite, value: number, ackedAt: number): void {
    w.value = value;
    w.ackedAt = ackedAt;
  }

  /** A write refused before it could take effect. */
  drop(w: CursorWrite): void {
    this.writes = this.writes.filter((x) => x !== w);
  }

  /**
   * Checks a cursor `seen` (null: no cursor) reported by a read sent at `sentAt` and answered at
   * `answeredAt`. The writes that could be the latest: sent before the answer, and not overwritten
   * for sure before the read was sent (a write is, once another one acknowledged before the read
   * was sent started after it was acknowledged). Auto-commits of unknown value may each have moved
   * the cursor forward by up to `stepMax`. `startMax` is the highest topic start any node has
   * applied (a cursor below the start reads from the start).
   */
  check(what: string, seen: number | null, sentAt: number, answeredAt: number, startMax: number): void {
    let latestStart = Number.NEGATIVE_INFINITY;
    for (const w of this.writes) if (w.ackedAt < sentAt && w.sentAt > latestStart) latestStart = w.sentAt;
    const live = this.writes.filter((w) => w.sentAt < answeredAt && w.ackedAt >= latestStart);
    const initialPossible = latestStart === Number.NEGATIVE_INFINITY;
    if (seen === null) {
      if (!initialPossible)
        violation('CursorNotStale', `${what}: no cursor, but a commit was acknowledged before the read`);
      return;
    }
    const values = live.filter((w) => w.value !== null).map((w) => w.value!);
    if (initialPossible) values.push(0);
    const slack = live.filter((w) => w.value === null).length * this.stepMax;
    for (const v of values) {
      const from = Math.max(v, Math.min(seen, startMax));
      if (seen >= v && seen <= from + slack) return;
    }
    violation(
      'CursorNotStale',
      `${what}: cursor ${seen} sent at ${sentAt} answered at ${answeredAt}, but only [${values.slice(-8).join(', ')}] (+ up to ${slack} by auto-commits) could be latest (topic start ≤ ${startMax})`,
    );
  }
}

export class TopicModel {
  /** When its creation was acknowledged (Infinity: not yet). */
  createdAt = Number.POSITIVE_INFINITY;
  /** Set once any client asks to delete it (from then on nothing about it is checked). */
  deleteAsked = false;
  /** offset → value of every acknowledged record. */
  readonly acked = new Map<number, string>();
  /** offset → value of every record read. */
  readonly seen = new Map<number, string>();
  /** value → offset, for every record acknowledged or read. */
  readonly offsetOf = new Map<string, number>();
  /** (time, end): the acknowledged end after each acknowledgement, ascending in both. */
  private readonly ends: { at: number; end: number }[] = [];
  readonly consumers = new Map<string, ConsumerModel>();
  /** The highest start (first offset retention kept) any node has applied so far. */
  startMax = 0;

  constructor(readonly name: string) {}

  get ackedEnd(): number {
    return this.ends[this.ends.length - 1]?.end ?? 0;
  }

  /** The end acknowledged strictly before `time`. */
  ackedEndBefore(time: number): number {
    let end = 0;
    for (let i = this.ends.length - 1; i >= 0; i--) {
      if (this.ends[i]!.at < time) {
        end = this.ends[i]!.end;
        break;
      }
    }
    return end;
  }

  consumer(name: string, stepMax: number): ConsumerModel {
    let c = this.consumers.get(name);
    if (c === undefined) {
      c = new ConsumerModel(stepMax);
      this.consumers.set(name, c);
    }
    return c;
  }

  private place(offset: number, value: string, how: string): void {
    const at = this.offsetOf.get(value);
    if (at !== undefined && at !== offset)
      violation(
        'AckedAppendStays',
        `topic ${this.name}: value ${value} ${how} at offset ${offset} but was at ${at}`,
      );
    this.offsetOf.set(value, offset);
  }

  onAppendAck(values: readonly string[], first: number, last: number, at: number): void {
    // Once a delete was asked, a create still in flight may make the topic anew: nothing is checked.
    if (this.deleteAsked) return;
    if (last - first + 1 !== values.length)
      violation(
        'AckedAppendStays',
        `topic ${this.name}: ${values.length} records acknowledged as offsets ${first}..${last}`,
      );
    for (let i = 0; i < values.length; i++) {
      const offset = first + i;
      const value = values[i]!;
      const before = this.acked.get(offset) ?? this.seen.get(offset);
      if (before !== undefined && before !== value)
        violation(
          'AckedAppendStays',
          `topic ${this.name}: offset ${offset} acknowledged as ${value} but holds ${before}`,
        );
      this.place(offset, value, 'acknowledged');
      this.acked.set(offset, value);
    }
    const end = Math.max(this.ackedEnd, last + 1);
    const top = this.ends[this.ends.length - 1];
    if (top !== undefined && top.at === at) top.end = end;
    else this.ends.push({ at, end });
  }

  /** A successful read of `records` at `offset`. */
  onRead(
    offset: number,
    records: readonly { offset: number; value: string }[],
    sentAt: number,
    via: string,
  ): void {
    if (this.deleteAsked) return;
    records.forEach((r, i) => {
      if (r.offset !== offset + i)
        violation(
          'AckedAppendStays',
          `topic ${this.name}: read at ${offset} (${via}) returned offset ${r.offset} as record ${i}`,
        );
      const known = this.acked.get(r.offset) ?? this.seen.get(r.offset);
      if (known !== undefined && known !== r.value)
        violation(
          'AckedAppendStays',
          `topic ${this.name}: offset ${r.offset} read as ${r.value} (${via}) but holds ${known}`,
        );
      this.place(r.offset, r.value, `read (${via})`);
      this.seen.set(r.offset, r.value);
    });
    if (records.length === 0 && !this.deleteAsked) {
      const end = this.ackedEndBefore(sentAt);
      if (offset < end)
        violation(
          'NoEmptyReadBelowAckedEnd',
          `topic ${this.name}: empty read at ${offset} (${via}) below the acknowledged end ${end}`,
        );
    }
  }

  /** An answer TOPIC_NOT_FOUND to a request sent at `sentAt`. */
  onNotFound(sentAt: number, what: string): void {
    if (!this.deleteAsked && this.createdAt < sentAt)
      violation(
        'TopicNotLost',
        `${what}: TOPIC_NOT_FOUND for topic ${this.name}, created at ${this.createdAt}`,
      );
  }
}

export class Oracle {
  readonly topics = new Map<string, TopicModel>();

  topic(name: string): TopicModel {
    let t = this.topics.get(name);
    if (t === undefined) {
      t = new TopicModel(name);
      this.topics.set(name, t);
    }
    return t;
  }
}
