/**
 * The limits of a node's Prometheus metrics, in one place: how many per-topic (and per-consumer)
 * series a scrape may carry, how often the data directory is measured and how much of it a
 * measurement may walk. A node with 10,000 topics must not answer a scrape with 10,000 × N series:
 * per-topic families carry the `topicSeriesCountMax` topics with the largest value (the ones an
 * operator looks at: most records, most lag), and every family has a total without a topic label.
 */
import assert from 'node:assert';

export const metricsLimits = {
  /** Default for WALRUS_METRICS_TOPICS_MAX: topics (or topic × consumer pairs) per per-topic family. */
  topicSeriesCountMaxDefault: 50,
  /** Largest value WALRUS_METRICS_TOPICS_MAX accepts. */
  topicSeriesCountMaxLimit: 1000,
  /** The data directory's size is measured at most this often (a scrape serves the last figure). */
  dataDirScanIntervalMs: 60_000,
  /** Directory entries one measurement visits at most; past it the figure is a lower bound. */
  dataDirScanEntryCountMax: 200_000,
  /** Socket byte counts are kept for at most this many open sockets per port role. */
  trackedSocketCountMax: 20_000,
} as const;

assert(metricsLimits.topicSeriesCountMaxDefault <= metricsLimits.topicSeriesCountMaxLimit);
assert(metricsLimits.dataDirScanEntryCountMax > 0 && metricsLimits.dataDirScanIntervalMs >= 1000);
