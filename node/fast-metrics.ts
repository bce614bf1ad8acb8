/**
 * Prometheus histograms and counters for the hot paths of the node and the gateway (request
 * latency and counts, fsync latency, group-commit size): `observe` is a loop over a few bucket
 * bounds and three array writes, `inc` one addition, with no allocation and no label hashing
 * (prom-client hashes the label set on every call, about 0.75 µs per request for a counter and a
 * histogram). A child per label-value tuple is made once (`child('POST', '/v1/…')`) and kept by the
 * caller; label values come from small fixed sets (ops, routes, statuses), and `childCountMax`
 * makes a bug that breaks that throw rather than leak series. Both plug into a prom-client
 * Registry as custom metrics (`get()` returns the exposition values at scrape time).
 *
 * A leaf shared by node/metrics and the gateway, like log.ts: it imports nothing of ours.
 */
import type { Registry } from 'prom-client';

/** One label-value tuple's buckets. Counts are per bucket (not cumulative) until exposition. */
export class HistogramChild {
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]! += 1;
    this.sum += value;
    this.count += 1;
  }
}

/** One label-value tuple's count. */
export class CounterChild {
  value = 0;

  inc(amount = 1): void {
    this.value += amount;
  }
}

interface ExposedValue {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

interface Exposition {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  values: ExposedValue[];
}

/** Children by their label values (joined by NUL), bounded, each with its label record. */
class Children<C> {
  private readonly byKey = new Map<string, { readonly labels: Record<string, string>; readonly child: C }>();

  constructor(
    private readonly name: string,
    private readonly labelNames: readonly string[],
    private readonly countMax: number,
    private readonly make: () => C,
  ) {}

  get(labelValues: readonly string[]): C {
    if (labelValues.length !== this.labelNames.length)
      throw new Error(
        `${this.name}: ${this.labelNames.length} label values expected, got ${labelValues.length}`,
      );
    const key = labelValues.join('\0');
    let entry = this.byKey.get(key);
    if (entry === undefined) {
      if (this.byKey.size >= this.countMax)
        throw new Error(`${this.name}: more than ${this.countMax} label values`);
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => {
        labels[name] = labelValues[i]!;
      });
      entry = { labels, child: this.make() };
      this.byKey.set(key, entry);
    }
    return entry.child;
  }

  entries(): IterableIterator<{ readonly labels: Record<string, string>; readonly child: C }> {
    return this.byKey.values();
  }

  clear(): void {
    this.byKey.clear();
  }
}

export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children: Children<HistogramChild>;

  /**
   * @param labelNames the labels (e.g. `['op']`), or none for an unlabelled histogram
   * @param childCountMax the most label-value tuples: a bug that makes more throws, never a series leak
   */
  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    private readonly bounds: readonly number[],
    childCountMax = 64,
    registry?: Registry,
  ) {
    for (let i = 1; i < bounds.length; i++)
      if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`${name}: bucket bounds must ascend`);
    this.children = new Children(name, labelNames, childCountMax, () => new HistogramChild(bounds));
    registry?.registerMetric(this as never);
  }

  /** The child of one label-value tuple (none when unlabelled): made on first use, then the same object. */
  child(...labelValues: string[]): HistogramChild {
    return this.children.get(labelValues);
  }

  /** prom-client's custom-metric interface: the exposition values at scrape time. */
  get(): Exposition {
    const values: ExposedValue[] = [];
    for (const { labels, child } of this.children.entries()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += child.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { ...labels, le }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels, value: child.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: child.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.children.clear();
  }
}

export class FastCounter {
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly children: Children<CounterChild>;

  /** @param childCountMax the most label-value tuples (see FastHistogram) */
  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    childCountMax = 64,
    registry?: Registry,
  ) {
    this.children = new Children(name, labelNames, childCountMax, () => new CounterChild());
    registry?.registerMetric(this as never);
  }

  child(...labelValues: string[]): CounterChild {
    return this.children.get(labelValues);
  }

  /** prom-client's custom-metric interface. */
  get(): Exposition {
    const values: ExposedValue[] = [];
    for (const { labels, child } of this.children.entries())
      values.push({ metricName: this.name, labels, value: child.value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.children.clear();
  }
}

/** Latency buckets in seconds, 100 µs to 10 s: a local fsync'd append to a long poll's end. */
export const latencyBucketsSeconds = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
] as const;
