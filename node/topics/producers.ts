/**
 * Idempotent producers: a producer sends (producerId, producerSeq) with each batch; a retry of the
 * last sequence is answered with the first answer (`duplicate: true`), a gap or an older sequence
 * is SEQUENCE_MISMATCH. The table lives on the leader of the active segment and survives:
 * - a rollover: the seal command hands the most recent batches to the next segment leader;
 * - a crash of the leader: the last record of each batch carries a node-only header
 *   `[producerId, producerSeq, recordCount]`, and a restarted leader rebuilds the table from the
 *   active segment's records. Clients may not send NUL-led header names, and readers never see it.
 *   The rebuild is deferred (`deferProducerRestore`) to the table's first use: the first producer
 *   append or the seal that hands the table over. A restart so costs no read of the data, and only
 *   topics that are written by idempotent producers (or roll over) pay for the rebuild.
 */
import type { Wal, WalRecord } from '../wal/index.js';
import type { RecordInput, ResponseByOp, StoredRecord } from '../protocol/messages.js';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import { type ProducerEntry, type TopicMeta, activeSegment } from '../metadata/metadata-state.js';
import type { Logger } from '../log.js';
import { topicLimits } from './limits.js';
import type { ProducerState, TopicRuntime } from './topic-table.js';

/** The header the node adds to the last record of an idempotent producer's batch. */
export const producerHeaderName = '\u0000walrus.producer';

/** The batch with the producer header on its last record (a copy; the caller's records are kept). */
export function withProducerHeader(
  records: readonly RecordInput[],
  producerId: string,
  producerSeq: number,
  producerEpoch = 0,
): RecordInput[] {
  const copy = records.slice();
  const last = copy[copy.length - 1]!;
  copy[copy.length - 1] = {
    ...last,
    headers: {
      ...last.headers,
      [producerHeaderName]: JSON.stringify(
        producerEpoch === 0
          ? [producerId, producerSeq, records.length]
          : [producerId, producerSeq, records.length, producerEpoch],
      ),
    },
  };
  return copy;
}

/** The record as a reader sees it: without the node-only producer header. */
export function forReader(record: WalRecord): StoredRecord {
  if (!(producerHeaderName in record.headers)) return record;
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(record.headers))
    if (name !== producerHeaderName) headers[name] = value;
  return { ...record, headers };
}

/**
 * `[producerId, producerSeq, recordCount, producerEpoch]` (epoch 0 when the header has none), or
 * null when the header is not one the node wrote.
 */
export function parseProducerHeader(value: string): [string, number, number, number] | null {
  try {
    const parsed = JSON.parse(value) as unknown;
    if (
      Array.isArray(parsed) &&
      (parsed.length === 3 || (parsed.length === 4 && Number.isSafeInteger(parsed[3]) && parsed[3] >= 0)) &&
      typeof parsed[0] === 'string' &&
      Number.isSafeInteger(parsed[1]) &&
      Number.isSafeInteger(parsed[2]) &&
      (parsed[2] as number) >= 1
    )
      return [parsed[0], parsed[1], parsed[2], (parsed[3] as number | undefined) ?? 0];
  } catch {
    // Not JSON: not ours.
  }
  return null;
}

/** Records an acknowledged producer batch, most recent last, bounded. */
export function rememberProducer(
  rt: TopicRuntime,
  id: string,
  seq: number,
  done: ResponseByOp['append'],
  epoch = 0,
): void {
  rt.producers.delete(id);
  rt.producers.set(id, { seq, result: Promise.resolve(done), done, ...(epoch === 0 ? {} : { epoch }) });
  forgetOldest(rt);
}

function forgetOldest(rt: TopicRuntime): void {
  if (rt.producers.size > topicLimits.producerCountMaxPerTopic) {
    const oldest = rt.producers.keys().next().value;
    if (oldest !== undefined) rt.producers.delete(oldest);
  }
}

/**
 * Checks a batch's sequence before it is appended: the earlier answer when it is a retry of the
 * last batch, null when it is the next one (or the producer is new).
 */
export function checkSequence(
  rt: TopicRuntime,
  producerId: string,
  producerSeq: number,
): Promise<ResponseByOp['append']> | null {
  settleProducerRestore(rt);
  const known = rt.producers.get(producerId);
  if (known === undefined) return null;
  if (producerSeq === known.seq) return known.result.then((previous) => ({ ...previous, duplicate: true }));
  if (producerSeq !== known.seq + 1) {
    throw new WalrusError(
      ErrorCode.SEQUENCE_MISMATCH,
      `producer '${producerId}' sent sequence ${producerSeq}; expected ${known.seq + 1}`,
    );
  }
  return null;
}

/**
 * Checks a Durable Streams producer's batch (epoch fencing): an epoch below the known one is
 * PRODUCER_FENCED; a higher epoch must start at sequence 0 (BAD_REQUEST otherwise) and replaces
 * the known one; within the epoch a sequence at or below the last is a duplicate (answered with
 * the last batch's answer), the next one goes in, a gap is SEQUENCE_MISMATCH. A producer the
 * table does not know starts at sequence 0.
 */
export function checkEpochSequence(
  rt: TopicRuntime,
  producerId: string,
  epoch: number,
  seq: number,
): Promise<ResponseByOp['append']> | null {
  settleProducerRestore(rt);
  const known = rt.producers.get(producerId);
  if (known === undefined) {
    if (seq !== 0)
      throw new WalrusError(
        ErrorCode.SEQUENCE_MISMATCH,
        `producer '${producerId}' is new: its first sequence must be 0, got ${seq}`,
      );
    return null;
  }
  const knownEpoch = known.epoch ?? 0;
  if (epoch < knownEpoch)
    throw new WalrusError(
      ErrorCode.PRODUCER_FENCED,
      `producer '${producerId}' epoch ${epoch} is fenced by epoch ${knownEpoch}`,
    );
  if (epoch > knownEpoch) {
    if (seq !== 0)
      throw new WalrusError(
        ErrorCode.BAD_REQUEST,
        `a new producer epoch must start at sequence 0, got ${seq}`,
      );
    return null;
  }
  if (seq <= known.seq) return known.result.then((previous) => ({ ...previous, duplicate: true }));
  if (seq !== known.seq + 1)
    throw new WalrusError(
      ErrorCode.SEQUENCE_MISMATCH,
      `producer '${producerId}' sent sequence ${seq}; expected ${known.seq + 1}`,
    );
  return null;
}

/** The producer's epoch and last sequence, or null when the table does not know it. */
export function producerPosition(
  rt: TopicRuntime,
  producerId: string,
): { epoch: number; seq: number } | null {
  settleProducerRestore(rt);
  const known = rt.producers.get(producerId);
  return known === undefined ? null : { epoch: known.epoch ?? 0, seq: known.seq };
}

/** Remembers a batch being appended; a failed append restores what was known before it. */
export function trackBatch(
  rt: TopicRuntime,
  producerId: string,
  producerSeq: number,
  result: Promise<ResponseByOp['append']>,
  producerEpoch = 0,
): void {
  const previous = rt.producers.get(producerId);
  const entry: ProducerState = {
    seq: producerSeq,
    result,
    ...(producerEpoch === 0 ? {} : { epoch: producerEpoch }),
  };
  result.then(
    (r) => {
      entry.done = r;
    },
    () => {
      if (rt.producers.get(producerId) === entry) {
        if (previous) rt.producers.set(producerId, previous);
        else rt.producers.delete(producerId);
      }
    },
  );
  rt.producers.delete(producerId);
  rt.producers.set(producerId, entry);
  forgetOldest(rt);
}

/** The producers the previous segment's leader handed over when it sealed (newer knowledge wins). */
export function takeOverProducers(topic: TopicMeta, rt: TopicRuntime): void {
  for (const [id, seq, firstOffset, lastOffset, timestampMs, epoch = 0] of topic.producers) {
    const known = rt.producers.get(id);
    const knownEpoch = known?.epoch ?? 0;
    if (known !== undefined && (knownEpoch > epoch || (knownEpoch === epoch && known.seq >= seq))) continue;
    rememberProducer(
      rt,
      id,
      seq,
      { firstOffset, lastOffset, timestampMs, duplicate: false, acks: 'quorum' },
      epoch,
    );
  }
}

/**
 * Defers `restoreProducers` of the topic's active segment to the producer table's first use; it is
 * dropped if by then this node no longer leads that segment (its seal handed the table over).
 */
export function deferProducerRestore(
  wal: Wal,
  lookup: (name: string) => TopicMeta | undefined,
  topic: TopicMeta,
  rt: TopicRuntime,
  nodeId: number,
  logger: Logger,
): void {
  const segmentId = activeSegment(topic).id;
  rt.producerRestore = () => {
    const now = lookup(topic.name);
    if (now === undefined) return;
    const active = activeSegment(now);
    if (active.id === segmentId && active.leaderNodeId === nodeId) restoreProducers(wal, now, rt, logger);
  };
}

/** Runs a deferred restore, once; one that throws (a corrupt record) is tried again at the next use. */
export function settleProducerRestore(rt: TopicRuntime): void {
  const restore = rt.producerRestore;
  if (restore === null) return;
  restore();
  rt.producerRestore = null;
}

/** Rebuilds the producers of the active segment from the producer headers of its records. */
export function restoreProducers(wal: Wal, topic: TopicMeta, rt: TopicRuntime, logger: Logger): void {
  const active = activeSegment(topic);
  if (!wal.segments(topic.name).some((s) => s.id === active.id)) return;
  let restored = 0;
  for (let offset = active.baseOffset; offset < rt.committedEnd; ) {
    const page = wal.read(topic.name, offset, {
      recordCountMax: topicLimits.producerScanPageRecordCount,
      byteCountMax: topicLimits.producerScanPageBytes,
    });
    if (page.length === 0) break;
    for (const r of page) {
      const tag = r.headers[producerHeaderName];
      if (tag === undefined) continue;
      const parsed = parseProducerHeader(tag);
      if (parsed === null) continue;
      const [id, seq, count, epoch] = parsed;
      rememberProducer(
        rt,
        id,
        seq,
        {
          firstOffset: r.offset - count + 1,
          lastOffset: r.offset,
          timestampMs: r.timestampMs,
          duplicate: false,
          acks: 'quorum',
        },
        epoch,
      );
      restored += 1;
    }
    offset = page[page.length - 1]!.offset + 1;
  }
  if (restored > 0)
    logger.info(
      { topic: topic.name, batches: restored, producers: rt.producers.size },
      'Restored idempotent producers',
    );
}

/** The most recent acknowledged producer batches, bounded, for the seal command. */
export function producerTable(rt: TopicRuntime): ProducerEntry[] {
  settleProducerRestore(rt);
  const table: ProducerEntry[] = [];
  for (const [id, p] of rt.producers) {
    if (p.done === undefined) continue;
    const { firstOffset, lastOffset, timestampMs } = p.done;
    table.push(
      p.epoch === undefined
        ? [id, p.seq, firstOffset, lastOffset, timestampMs]
        : [id, p.seq, firstOffset, lastOffset, timestampMs, p.epoch],
    );
  }
  return table.slice(-topicLimits.producerCountMaxInSeal);
}

/**
 * The producers' last batches in [fromOffset, toOffset) of a local copy, from the producer headers
 * of its records (what a fenced replica reports to a recovery), most recent last, bounded.
 */
export function scanProducers(
  wal: Wal,
  topic: string,
  fromOffset: number,
  toOffset: number,
): ProducerEntry[] {
  const last = new Map<string, ProducerEntry>();
  for (let offset = fromOffset; offset < toOffset; ) {
    const page = wal.read(topic, offset, {
      recordCountMax: Math.min(topicLimits.producerScanPageRecordCount, toOffset - offset),
      byteCountMax: topicLimits.producerScanPageBytes,
    });
    if (page.length === 0) break;
    for (const r of page) {
      if (r.offset >= toOffset) break;
      const tag = r.headers[producerHeaderName];
      const parsed = tag === undefined ? null : parseProducerHeader(tag);
      if (parsed === null) continue;
      const [id, seq, count, epoch] = parsed;
      last.delete(id);
      last.set(
        id,
        epoch === 0
          ? [id, seq, r.offset - count + 1, r.offset, r.timestampMs]
          : [id, seq, r.offset - count + 1, r.offset, r.timestampMs, epoch],
      );
    }
    offset = page[page.length - 1]!.offset + 1;
  }
  return [...last.values()].slice(-topicLimits.producerCountMaxInSeal);
}

/** The seal's producer table after a recovery: the previous seal's, updated by the segment's own batches. */
export function mergeProducers(
  previous: readonly ProducerEntry[],
  found: readonly ProducerEntry[],
  sealedEnd: number,
): ProducerEntry[] {
  const table = new Map<string, ProducerEntry>();
  for (const e of previous) table.set(e[0], e);
  for (const e of found) {
    if (e[3] >= sealedEnd) continue; // a batch cut by the seal was never acknowledged
    table.delete(e[0]);
    table.set(e[0], e);
  }
  return [...table.values()].slice(-topicLimits.producerCountMaxInSeal);
}
