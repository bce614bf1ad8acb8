/**
 * A Prometheus histogram for the hot paths (request latency, fsync latency, group-commit size):
 * `observe` is a loop over a few bucket bounds and three array writes, with no allocation and no
 * label hashing (prom-client's own Histogram hashes the label set on every observation). A child
 * per label value is made once (`child('append')`) and kept by the caller; label values form a
 * small fixed set (ops, a few kinds), so the series count is bounded by construction. It plugs
 * into a prom-client Registry as a custom metric (`get()` returns the exposition values).
 */
import type { Registry } from 'prom-client';

/** One label value's buckets. Counts are per bucket (not cumulative) until exposition. */
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

interface ExposedValue {
  readonly metricName: string;
  readonly labels: Record<string, string | number>;
  readonly value: number;
}

export class FastHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly children = new Map<string, HistogramChild>();

  /**
   * @param labelName the one label (e.g. `op`), or null for an unlabelled histogram
   * @param childCountMax the most label values: a bug that makes more throws, never a series leak
   */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: string | null,
    private readonly bounds: readonly number[],
    private readonly childCountMax = 64,
    registry?: Registry,
  ) {
    for (let i = 1; i < bounds.length; i++)
      if (!(bounds[i]! > bounds[i - 1]!)) throw new Error(`${name}: bucket bounds must ascend`);
    registry?.registerMetric(this as never);
  }

  /** The child of one label value ('' when unlabelled): made on first use, then the same object. */
  child(labelValue = ''): HistogramChild {
    let c = this.children.get(labelValue);
    if (c === undefined) {
      if (this.children.size >= this.childCountMax)
        throw new Error(`${this.name}: more than ${this.childCountMax} label values`);
      c = new HistogramChild(this.bounds);
      this.children.set(labelValue, c);
    }
    return c;
  }

  /** prom-client's custom-metric interface: the exposition values at scrape time. */
  get(): { name: string; help: string; type: string; aggregator: string; values: ExposedValue[] } {
    const values: ExposedValue[] = [];
    for (const [labelValue, c] of this.children) {
      const base: Record<string, string> = this.labelName === null ? {} : { [this.labelName]: labelValue };
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += c.counts[i]!;
        const le = i < this.bounds.length ? this.bounds[i]! : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { ...base, le }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: base, value: c.sum });
      values.push({ metricName: `${this.name}_count`, labels: base, value: c.count });
    }
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
