/**
 * Prometheus metrics of one gateway (prom-client), in a registry per app so that several apps in
 * one process (tests) do not collide: requests by route and status with latency, SSE tails,
 * upstream errors and retries, appends joined into shared batches, failed TLS handshakes on the HTTPS port and SIGHUP reloads.
 */
import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { FastCounter, FastHistogram } from '../node/fast-metrics.js';

/**
 * Label-value tuples of the per-request metrics: methods are folded to a fixed set and routes are
 * the app's own patterns, so the real count is a few hundred; this bound only catches a bug.
 */
export const requestSeriesCountMax = 4096;

export class GatewayMetrics {
  readonly registry = new Registry();
  /** Per request, so without prom-client's label hashing (node/fast-metrics.ts). */
  readonly httpRequests: FastCounter;
  readonly httpDurationSeconds: FastHistogram;
  readonly sseConnections: Gauge;
  readonly sseFeeds: Gauge;
  readonly sseEvents: Counter;
  readonly sseSlowDisconnects: Counter;
  readonly upstreamErrors: Counter<'op' | 'code'>;
  readonly upstreamRetries: Counter<'op'>;
  readonly appendsJoined: Counter;
  readonly joinedAppendBatches: Counter;
  readonly tlsHandshakeFailures: Counter<'listener'>;
  readonly configReloads: Counter<'result'>;
  readonly configLastReloadSuccessful: Gauge;

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [this.registry];
    this.httpRequests = new FastCounter(
      'walrus_gateway_http_requests_total',
      'HTTP requests by method, route and status',
      ['method', 'route', 'status'],
      requestSeriesCountMax,
      this.registry,
    );
    this.httpDurationSeconds = new FastHistogram(
      'walrus_gateway_http_request_duration_seconds',
      'HTTP request latency until the response head (SSE: until the stream starts)',
      ['method', 'route'],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      requestSeriesCountMax,
      this.registry,
    );
    this.sseConnections = new Gauge({
      name: 'walrus_gateway_sse_connections',
      help: 'Open SSE tails',
      registers,
    });
    this.sseFeeds = new Gauge({
      name: 'walrus_gateway_sse_feeds',
      help: 'Topics with a shared upstream reader',
      registers,
    });
    this.sseEvents = new Counter({
      name: 'walrus_gateway_sse_events_total',
      help: 'Record events written',
      registers,
    });
    this.sseSlowDisconnects = new Counter({
      name: 'walrus_gateway_sse_slow_disconnects_total',
      help: 'SSE tails closed because their buffer was full',
      registers,
    });
    this.upstreamErrors = new Counter({
      name: 'walrus_gateway_upstream_errors_total',
      help: 'Errors answered by the cluster, by operation and code',
      labelNames: ['op', 'code'],
      registers,
    });
    this.upstreamRetries = new Counter({
      name: 'walrus_gateway_upstream_retries_total',
      help: 'Upstream calls retried by the gateway after a retryable error',
      labelNames: ['op'],
      registers,
    });
    this.appendsJoined = new Counter({
      name: 'walrus_gateway_appends_joined_total',
      help: 'Plain appends sent to the cluster in one batch with other appends to their topic from the same event-loop turn',
      registers,
    });
    this.joinedAppendBatches = new Counter({
      name: 'walrus_gateway_joined_append_batches_total',
      help: 'Upstream appends that carried two or more joined HTTP appends',
      registers,
    });
    this.tlsHandshakeFailures = new Counter({
      name: 'walrus_gateway_tls_handshake_failures_total',
      help: 'TLS handshakes refused on the HTTPS port (listener="https"): plaintext clients, clients that refuse the certificate, timeouts; 0 without --tls-cert',
      labelNames: ['listener'],
      registers,
    });
    this.tlsHandshakeFailures.inc({ listener: 'https' }, 0);
    this.configReloads = new Counter({
      name: 'walrus_gateway_config_reloads_total',
      help: 'SIGHUP reloads of the tokens file and the TLS files, by result (success, failure: nothing was replaced)',
      labelNames: ['result'],
      registers,
    });
    this.configReloads.inc({ result: 'success' }, 0);
    this.configReloads.inc({ result: 'failure' }, 0);
    this.configLastReloadSuccessful = new Gauge({
      name: 'walrus_gateway_config_last_reload_successful',
      help: '0 after a failed SIGHUP reload until one succeeds (the gateway serves its previous tokens and certificate); 1 otherwise',
      registers,
    });
    this.configLastReloadSuccessful.set(1);
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'walrus_gateway_' });
  }
}
