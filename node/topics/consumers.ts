/**
 * Named consumer cursors, stored cluster-wide in the metadata and served by the Raft leader only.
 *
 * Every answer comes after a read barrier (ReadIndex): a deposed leader, or a new one whose applied
 * state lags what was committed, must not answer an old cursor. A read-next commits its cursor by
 * compare-and-set on the cursor it read from, so a commit decided on a stale view changes nothing:
 * a cursor only moves backwards when a client commits a lower offset on purpose (a seek). An
 * explicit commit may be a compare-and-set too (`expectedOffset`: the cursor it read from), so a
 * commit that arrives late (a lost connection, a retry, a forward delayed by a partition) cannot
 * move the cursor back either.
 * Read-next and commit are serialised per consumer on this node, so two readers never get the same
 * records.
 */
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import type { ResponseByOp } from '../protocol/messages.js';
import { type TopicMeta, metadataLimits, topicStartOffset } from '../metadata/metadata-state.js';
import type { Reader, ReadLimits } from './reader.js';
import { type TopicContext, proposeOrThrow } from './topic-context.js';
import { type TopicRuntime, toWalrusError } from './topic-table.js';

const consumerNamePattern = /^[A-Za-z0-9._-]{1,200}$/;

/** The consumer that the Walrus `GET <topic>` command reads through. */
export const sharedConsumerName = 'shared';

export class Consumers {
  private readonly ctx: TopicContext;
  private readonly reader: Reader;

  constructor(ctx: TopicContext, reader: Reader) {
    this.ctx = ctx;
    this.reader = reader;
  }

  readNext(
    name: string,
    consumer: string,
    limits: ReadLimits & { autoCommit: boolean },
  ): Promise<ResponseByOp['consumerReadNext']> {
    const { table } = this.ctx;
    table.topic(name);
    checkConsumer(consumer);
    const rt = table.runtime(name);
    return this.withLock(rt, consumer, async () => {
      await this.barrier();
      const topic = table.topic(name);
      checkRoom(topic, consumer);
      const stored = topic.cursors.get(consumer) ?? null;
      const offset = cursorOf(topic, consumer);
      // The end is asked of the active segment's leader alongside the read (this node, the Raft
      // leader, knows only a lower bound of it), and before any commit: a failure here moves no cursor.
      const [records, end] = await Promise.all([
        this.reader.readAnywhere(name, offset, limits),
        this.reader.topicEnd(name).catch((error: unknown) => {
          throw toWalrusError(error);
        }),
      ]);
      const last = records[records.length - 1];
      const nextOffset = last === undefined ? offset : last.offset + 1;
      if (limits.autoCommit && nextOffset !== stored) {
        const index = await proposeOrThrow(this.ctx, {
          type: 'commitCursor',
          topic: name,
          consumer,
          offset: nextOffset,
          expectedOffset: stored,
        });
        // Asked of the state machine, not read off the cursor: a reader on another node that read
        // the same records commits the same offset, and only one of the two commits takes effect.
        if (this.ctx.meta.state.cursorCommitRefused(index)) {
          // Another leader moved the cursor meanwhile: these records were not ours to deliver.
          throw new WalrusError(
            ErrorCode.UNAVAILABLE,
            `the cursor of consumer '${consumer}' on topic '${name}' moved during the read (a Raft leader change); read again`,
          );
        }
      }
      return { records, nextOffset, endOffset: Math.max(end, nextOffset) };
    });
  }

  async commit(
    name: string,
    consumer: string,
    offset: number,
    expectedOffset?: number,
  ): Promise<ResponseByOp['consumerCommit']> {
    const { table } = this.ctx;
    table.topic(name);
    checkConsumer(consumer);
    const rt = table.runtime(name);
    const end = await this.reader.topicEnd(name);
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > end) {
      throw new WalrusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `cannot commit offset ${offset}: the topic's end is ${end}`,
      );
    }
    checkRoom(table.topic(name), consumer);
    return this.withLock(rt, consumer, async () => {
      if (expectedOffset === undefined) {
        await proposeOrThrow(this.ctx, { type: 'commitCursor', topic: name, consumer, offset });
        return { consumer: { topic: name, consumer, offset } };
      }
      await this.barrier();
      const stored = table.topic(name).cursors.get(consumer) ?? null;
      if (stored === offset) return { consumer: { topic: name, consumer, offset } }; // a retried commit
      const cursor = stored ?? cursorOf(table.topic(name), consumer);
      if (cursor !== expectedOffset) throw mismatch(name, consumer, cursor, expectedOffset);
      const index = await proposeOrThrow(this.ctx, {
        type: 'commitCursor',
        topic: name,
        consumer,
        offset,
        expectedOffset: stored,
      });
      if (this.ctx.meta.state.cursorCommitRefused(index)) {
        const now = cursorOf(table.topic(name), consumer);
        if (now !== offset) throw mismatch(name, consumer, now, expectedOffset);
      }
      return { consumer: { topic: name, consumer, offset } };
    });
  }

  async get(name: string, consumer: string): Promise<ResponseByOp['consumerGet']> {
    this.ctx.table.topic(name);
    checkConsumer(consumer);
    await this.barrier();
    const topic = this.ctx.table.topic(name);
    if (!topic.cursors.has(consumer)) {
      throw new WalrusError(
        ErrorCode.CONSUMER_NOT_FOUND,
        `consumer '${consumer}' has no cursor on topic '${name}'`,
      );
    }
    return { consumer: { topic: name, consumer, offset: cursorOf(topic, consumer) } };
  }

  /** Every consumer of the topic with its next offset, by name. */
  async list(name: string): Promise<ResponseByOp['consumerList']> {
    this.ctx.table.topic(name);
    await this.barrier();
    const topic = this.ctx.table.topic(name);
    const consumers = [...topic.cursors.keys()]
      .sort()
      .map((consumer) => ({ topic: name, consumer, offset: cursorOf(topic, consumer) }));
    return { consumers };
  }

  /** Forgets a consumer's cursor; false when it had none (after a read barrier, so not a stale no). */
  async delete(name: string, consumer: string): Promise<ResponseByOp['consumerDelete']> {
    const { table } = this.ctx;
    table.topic(name);
    checkConsumer(consumer);
    const rt = table.runtime(name);
    return this.withLock(rt, consumer, async () => {
      await this.barrier();
      if (!table.topic(name).cursors.has(consumer)) return { deleted: false };
      await proposeOrThrow(this.ctx, { type: 'deleteCursor', topic: name, consumer });
      return { deleted: true };
    });
  }

  private async barrier(): Promise<void> {
    try {
      await this.ctx.meta.readBarrier();
    } catch (error) {
      throw toWalrusError(error);
    }
  }

  private withLock<T>(rt: TopicRuntime, consumer: string, work: () => Promise<T>): Promise<T> {
    const before = rt.consumerLocks.get(consumer) ?? Promise.resolve();
    const run = before.then(work, work);
    const tail = run.catch(() => undefined);
    rt.consumerLocks.set(consumer, tail);
    void tail.then(() => {
      if (rt.consumerLocks.get(consumer) === tail) rt.consumerLocks.delete(consumer);
    });
    return run;
  }
}

function mismatch(topic: string, consumer: string, cursor: number, expected: number): WalrusError {
  return new WalrusError(
    ErrorCode.OFFSET_MISMATCH,
    `the cursor of consumer '${consumer}' on topic '${topic}' is at ${cursor}, not at the expected ${expected}: the commit changed nothing`,
  );
}

function checkConsumer(consumer: string): void {
  if (!consumerNamePattern.test(consumer) || consumer === '.' || consumer === '..') {
    throw new WalrusError(
      ErrorCode.BAD_REQUEST,
      'consumer names are 1-200 letters, digits, ".", "_" or "-" (and not "." or "..")',
    );
  }
}

function checkRoom(topic: TopicMeta, consumer: string): void {
  if (!topic.cursors.has(consumer) && topic.cursors.size >= metadataLimits.consumerCountMaxPerTopic) {
    throw new WalrusError(ErrorCode.BUSY, `topic '${topic.name}' has the maximum number of consumers`);
  }
}

/** The consumer's next offset: its cursor, or the topic's start when retention passed it. */
function cursorOf(topic: TopicMeta, consumer: string): number {
  return Math.max(topic.cursors.get(consumer) ?? 0, topicStartOffset(topic));
}
