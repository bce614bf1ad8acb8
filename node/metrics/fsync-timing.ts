/**
 * Times every fdatasync the WAL makes (seed 001's durability cost, the dashboard's fsync latency)
 * by wrapping the FileIo the node gives its WAL: the WAL is unchanged, the wrapper adds two
 * performance.now() calls and one histogram observation per sync. Only fdatasync is timed (the
 * group commit's); directory fsyncs and file creation are rare and not on the append path.
 */
import type { FileIo } from '../storage-io/index.js';
import type { HistogramChild } from '../fast-metrics.js';

export function timedFileIo(io: FileIo, fdatasyncSeconds: HistogramChild): FileIo {
  const timed: Partial<FileIo> = {
    fdatasync(fd: number): void {
      const startedMs = performance.now();
      try {
        io.fdatasync(fd);
      } finally {
        fdatasyncSeconds.observe((performance.now() - startedMs) / 1000);
      }
    },
    async fdatasyncAsync(fd: number): Promise<void> {
      const startedMs = performance.now();
      try {
        await io.fdatasyncAsync(fd);
      } finally {
        fdatasyncSeconds.observe((performance.now() - startedMs) / 1000);
      }
    },
  };
  // Every other call goes to `io` unchanged (through the prototype).
  return Object.setPrototypeOf(timed, io) as FileIo;
}
