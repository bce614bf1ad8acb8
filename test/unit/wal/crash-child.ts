/**
 * Child process of the kill -9 test: opens the WAL in argv[2] (fsync `always`), then many
 * concurrent producers append records of random sizes forever, rolling segments over now and then.
 * After each acknowledged append it prints `ack <first> <last> <seed>:<size>,...` (stdout to a pipe
 * is synchronous on Linux, so a printed line was acknowledged before the kill). The parent
 * recomputes every payload from its seed and size. Every record carries a `batch: i/count` header.
 */
import { Wal, WalError } from '../../../node/wal/index.js';
import { payload, prng } from './helpers.js';

const rootDir = process.argv[2];
const seed = Number(process.argv[3] ?? 1);
if (rootDir === undefined) throw new Error('usage: crash-child <dir> <seed>');
const producerCount = 24;
const rolloverRecordCount = 1500;
const retryCountMax = 100_000;

const wal = await Wal.open({ rootDir, fsyncPolicy: { kind: 'always' }, segmentPreallocateBytes: 256 * 1024 });
if (wal.segments('t').length === 0) await wal.createSegment('t', 1, 0);
const segments = wal.segments('t');
let rolling = false;
if (segments[segments.length - 1]!.sealed) {
  const last = segments[segments.length - 1]!;
  await wal.createSegment('t', last.id + 1, last.endOffset);
}
process.stdout.write(`ready ${wal.endOffset('t')}\n`);

async function maybeRollOver(): Promise<void> {
  const active = wal.segments('t').at(-1)!;
  if (rolling || active.endOffset - active.baseOffset < rolloverRecordCount) return;
  rolling = true;
  const sealed = await wal.sealActive('t');
  await wal.createSegment('t', sealed.id + 1, sealed.endOffset);
  rolling = false;
}

async function producer(index: number): Promise<void> {
  const random = prng(seed * 1000 + index);
  let retries = 0;
  for (;;) {
    const count = 1 + Math.floor(random() * 3);
    const specs = Array.from({ length: count }, () => ({
      seed: Math.floor(random() * 0x7fffffff),
      size: Math.floor(random() * random() * 4000),
    }));
    try {
      const r = await wal.append(
        't',
        // Each record says where it sits in its batch, so the parent can check batches are whole.
        specs.map((s, i) => ({ value: payload(s.seed, s.size), headers: { batch: `${i}/${count}` } })),
      );
      process.stdout.write(
        `ack ${r.firstOffset} ${r.lastOffset} ${specs.map((s) => `${s.seed}:${s.size}`).join(',')}\n`,
      );
      await maybeRollOver();
    } catch (error) {
      if (!(error instanceof WalError && error.code === 'UNAVAILABLE') || ++retries > retryCountMax)
        throw error;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
}

await Promise.all(Array.from({ length: producerCount }, (_, i) => producer(i)));
