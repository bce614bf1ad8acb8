/**
 * Limits of the topic service, each with its reason. Hitting one has a defined answer (a read
 * answers at once, the oldest producer is forgotten, an append fails UNAVAILABLE), never growth.
 */
import assert from 'node:assert/strict';
import { protocolLimits } from '../protocol/limits.js';
import { walLimits } from '../wal/limits.js';

export const topicLimits = {
  /** Long-poll reads waiting on one topic; beyond it a read answers at once. */
  waiterCountMaxPerTopic: 10_000,
  /** Longest long poll a client may ask for. */
  waitMsMax: 60_000,
  /** Idempotent producers remembered per topic (oldest forgotten first). */
  producerCountMaxPerTopic: 10_000,
  /** Records and bytes per read while a restarted leader rebuilds its producers. */
  producerScanPageRecordCount: 10_000,
  producerScanPageBytes: 16 * 1024 * 1024,
  /** Producers handed to the next segment leader at a seal (the most recent ones). */
  producerCountMaxInSeal: 1_000,
  /** Rollovers an append waits through before it gives up with UNAVAILABLE. */
  rolloverWaitCountMax: 8,
} as const;

assert(
  walLimits.headerCountMax > protocolLimits.recordHeaderCountMax,
  'the WAL must take one header more than a client may send: the producer header',
);
assert(topicLimits.producerCountMaxInSeal <= topicLimits.producerCountMaxPerTopic);
