/**
 * The simulator's one event queue: a binary min-heap ordered by (time, seq). seq is a global
 * insertion counter, so equal times pop in insertion order and a run depends only on the seed.
 */

export interface QueuedEvent {
  time: number;
  seq: number;
}

/** An event without its seq (distributes over unions, unlike Omit). */
export type Unsequenced<E> = E extends unknown ? Omit<E, 'seq'> : never;

export class EventQueue<E extends QueuedEvent> {
  private readonly heap: E[] = [];
  private seq = 0;

  get size(): number {
    return this.heap.length;
  }

  /** The next event to pop, left in the queue. */
  peek(): E | undefined {
    return this.heap[0];
  }

  push(e: Unsequenced<E>): void {
    const ev = e as unknown as E;
    ev.seq = this.seq++;
    const h = this.heap;
    h.push(ev);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!less(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  pop(): E | undefined {
    const h = this.heap;
    if (h.length === 0) return undefined;
    const top = h[0]!;
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && less(h[l]!, h[m]!)) m = l;
        if (r < h.length && less(h[r]!, h[m]!)) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m]!, h[i]!];
        i = m;
      }
    }
    return top;
  }
}

function less(a: QueuedEvent, b: QueuedEvent): boolean {
  return a.time < b.time || (a.time === b.time && a.seq < b.seq);
}
