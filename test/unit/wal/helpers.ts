/**
 * Shared helpers of the WAL tests: temp directories on the real filesystem, payloads that carry
 * their own identity, and a seeded PRNG so failures replay.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { WalOptions } from '../../../node/wal/index.js';
import { Wal } from '../../../node/wal/index.js';

export function tempDir(label: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `walrus-wal-${label}-`));
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export function openWal(rootDir: string, extra: Partial<WalOptions> = {}): Promise<Wal> {
  // Small preallocation: the machine's disk is shared, and the code paths are the same.
  return Wal.open({
    rootDir,
    fsyncPolicy: { kind: 'always' },
    segmentPreallocateBytes: 256 * 1024,
    ...extra,
  });
}

/** A payload of `size` bytes derived from `seed` (so a reader can recompute it). */
export function payload(seed: number, size: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x & 0xff;
  }
  return out;
}

/** mulberry32: a small seeded PRNG. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function segmentFile(
  rootDir: string,
  topic: string,
  segmentId: number,
  ext: 'wal' | 'idx' | 'seal',
): string {
  return path.join(rootDir, 'topics', topic, `${String(segmentId).padStart(20, '0')}.${ext}`);
}

/** Reads everything from `from` to the end in small pages (exercises the continuation logic). */
export function readAll(wal: Wal, topic: string, from: number): { offset: number; value: Uint8Array }[] {
  const out: { offset: number; value: Uint8Array }[] = [];
  let next = from;
  for (;;) {
    const page = wal.read(topic, next, { recordCountMax: 7, byteCountMax: 1000 });
    if (page.length === 0) return out;
    for (const r of page) out.push({ offset: r.offset, value: r.value });
    next = page[page.length - 1]!.offset + 1;
  }
}
