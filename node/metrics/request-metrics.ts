/**
 * Request counts, errors by code and latency by op, recorded on the hot path of every client
 * request (node/server/request-handler.ts calls `requestDone`). Cheap by construction: one
 * performance.now(), a Map lookup of the op's entry (made at its first request, then reused), a
 * bucket loop, and for a failure a second Map lookup by code. Ops and codes are fixed sets, so
 * the series count is bounded. Counted where the client's connection is: a request forwarded to
 * another node is counted once, by the node that took it from the client.
 */
import type { Registry } from 'prom-client';
import { Counter } from 'prom-client';
import {
  type CounterChild,
  FastCounter,
  FastHistogram,
  type HistogramChild,
  latencyBucketsSeconds,
} from '../fast-metrics.js';

const initialOps = ['append', 'read', 'consumerReadNext'] as const;

interface OpEntry {
  count: number;
  readonly duration: HistogramChild;
  readonly errors: Map<string, number>;
}

export class RequestMetrics {
  private readonly ops = new Map<string, OpEntry>();
  private readonly duration: FastHistogram;
  private readonly requests: Counter<'op'>;
  private readonly errors: Counter<'op' | 'code'>;
  private readonly joinedAppends: CounterChild;
  private readonly joins: CounterChild;

  constructor(registry: Registry) {
    this.joinedAppends = new FastCounter(
      'walrus_appends_joined_total',
      "Plain append requests written as part of one append with others from the same connection's read chunk",
      [],
      1,
      registry,
    ).child();
    this.joins = new FastCounter(
      'walrus_joined_appends_total',
      'Appends that carried two or more joined append requests',
      [],
      1,
      registry,
    ).child();
    this.duration = new FastHistogram(
      'walrus_request_duration_seconds',
      'Client requests: time from decoding the request to its reply, by op (append, read, consumerReadNext, ...)',
      ['op'],
      latencyBucketsSeconds,
      64,
      registry,
    );
    this.requests = new Counter({
      name: 'walrus_requests_total',
      help: 'Client requests answered, by op (binary ops; text PUT/GET/REGISTER/STATE count as append/consumerReadNext/createTopic/state)',
      labelNames: ['op'],
      registers: [registry],
    });
    this.errors = new Counter({
      name: 'walrus_request_errors_total',
      help: 'Client requests answered with an error, by op and error code',
      labelNames: ['op', 'code'],
      registers: [registry],
    });
    // The dashboard's rate panels show 0 rather than nothing on a node that has served none yet.
    for (const op of initialOps) this.entry(op);
  }

  private entry(op: string): OpEntry {
    let e = this.ops.get(op);
    if (e === undefined) {
      e = { count: 0, duration: this.duration.child(op), errors: new Map() };
      this.ops.set(op, e);
    }
    return e;
  }

  /** A client request was answered; `startedMs` is its performance.now() at the start. */
  requestDone(op: string, startedMs: number, errorCode: string | null): void {
    const e = this.ops.get(op) ?? this.entry(op);
    e.count += 1;
    e.duration.observe((performance.now() - startedMs) / 1000);
    if (errorCode !== null) e.errors.set(errorCode, (e.errors.get(errorCode) ?? 0) + 1);
  }

  /** `memberCount` append requests were written as one append (node/server/append-join.ts). */
  appendsJoined(memberCount: number): void {
    this.joinedAppends.inc(memberCount);
    this.joins.inc();
  }

  /** Copies the counts into the exposition (scrape time). */
  refresh(): void {
    this.requests.reset();
    this.errors.reset();
    for (const [op, e] of this.ops) {
      this.requests.inc({ op }, e.count);
      for (const [code, n] of e.errors) this.errors.inc({ op, code }, n);
    }
  }
}
