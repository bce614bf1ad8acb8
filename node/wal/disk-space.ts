/**
 * What the WAL knows of the free space on its file system, and what it does about it: a reserve
 * below which new appends and new segments are refused with DISK_FULL (so that seals, index
 * checkpoints, the Raft log and a restart still find room), how far background preallocation may
 * go (never into the reserve, at most a share of what is above it), when preallocated zeros are
 * given back (the disk is full), and warnings about a full disk at most one line per interval.
 *
 * Free space is read with statfs at most every `diskCheckIntervalMs` (a syscall on the event loop:
 * cheap, but not per append); in between, the bytes by which the WAL grew its files since (zeros
 * preallocated, records written past them) are taken off the last figure, so a burst cannot run
 * past the reserve. Records written over preallocated zeros take no new space and are not counted. A FileIo without statfs (the simulator's disk)
 * leaves the reserve off: a full disk is then known from ENOSPC alone, as before.
 */
import type { DiskUsage, FileIo } from '../storage-io/file-io.js';
import type { Logger } from '../log.js';
import { WalError, WalErrorCode } from './wal-error.js';

export const diskSpaceLimits = {
  /** statfs at most this often: a freed disk takes appends again within about this long. */
  diskCheckIntervalMs: 100,
  /** The default reserve is the smaller of this and `diskReserveDefaultPerMille` of the file system. */
  diskReserveDefaultBytesMax: 64 * 1024 * 1024,
  /** 1% of the file system's size (in thousandths). */
  diskReserveDefaultPerMille: 10,
  /**
   * One background preallocation step takes at most 1/this of the free space above the reserve: a
   * few active segments cannot take what is left between two statfs checks.
   */
  preallocateHeadroomDivisor: 8,
  /** At most one warning line per kind per this interval; it carries the count of those suppressed. */
  diskWarningIntervalMs: 10_000,
} as const;

/** The kinds of warning that are rate-limited (a fixed set: the table of last times is bounded). */
export type DiskWarningKind = 'refused' | 'writeFailed' | 'preallocateFailed' | 'checkpointFailed';

export interface DiskSpaceStatus {
  /** Free bytes at the last check (less what was written since), or null when not known. */
  readonly freeBytes: number | null;
  /** The reserve in bytes, or null while the file system's size is not known. */
  readonly reserveBytes: number | null;
  /** New appends and segments are refused with DISK_FULL. */
  readonly full: boolean;
}

export class DiskSpace {
  private usage: DiskUsage | null = null;
  /** `grownBytes` at the last statfs. */
  private grownAtCheck = 0;
  private checkedAtMs = Number.NEGATIVE_INFINITY;
  /** Set by an ENOSPC: full until the next statfs says otherwise. */
  private enospc = false;
  private readonly warnings = new Map<DiskWarningKind, { atMs: number; suppressed: number }>();
  /** Size of the last write refused, until one is admitted: `full` reports what appends meet. */
  private refusedBytes = 0;
  /** Bytes by which the WAL's files grew (a running count; see `noteGrowth`). */
  private grownBytes = 0;

  constructor(
    private readonly io: FileIo,
    private readonly dir: string,
    /** Bytes kept free; null for the default (min(64 MiB, 1% of the file system)). */
    private readonly reserveOption: number | null,
    private readonly nowMs: () => number,
    private readonly logger: Logger,
    /** Called when the disk is found full (the WAL gives preallocated space back). */
    private readonly onFull: () => void,
  ) {}

  /** The reserve for this file system (null when its size is not known and no reserve was set). */
  reserveBytes(): number | null {
    if (this.reserveOption !== null) return this.reserveOption;
    if (this.usage === null) return null;
    const { diskReserveDefaultBytesMax: max, diskReserveDefaultPerMille: perMille } = diskSpaceLimits;
    return Math.min(max, Math.floor((this.usage.sizeBytes * perMille) / 1000));
  }

  /** statfs again when the last check is older than diskCheckIntervalMs (or `force`). */
  refresh(force = false): void {
    const now = this.nowMs();
    if (!force && now - this.checkedAtMs < diskSpaceLimits.diskCheckIntervalMs) return;
    this.checkedAtMs = now;
    if (this.io.statfs === undefined) {
      // Nothing to ask: the next write finds out (as before the reserve existed).
      this.enospc = false;
      return;
    }
    const wasFull = this.isFull();
    try {
      this.usage = this.io.statfs(this.dir);
      this.grownAtCheck = this.grownBytes;
      this.enospc = false;
    } catch {
      this.usage = null;
      this.enospc = false;
    }
    if (!wasFull && this.isFull()) this.onFull();
  }

  /** Free bytes now, estimated: the last statfs less what the WAL's files grew since. */
  freeBytes(): number | null {
    if (this.usage === null) return null;
    return Math.max(0, this.usage.freeBytes - (this.grownBytes - this.grownAtCheck));
  }

  /** A file of the WAL grew by `bytes` (zeros preallocated, records past them): taken off the estimate. */
  noteGrowth(bytes: number): void {
    if (bytes > 0) this.grownBytes += bytes;
  }

  private isFull(extraBytes = 0): boolean {
    const free = this.freeBytes();
    const reserve = this.reserveBytes();
    // No reserve (0): a full disk is known from ENOSPC alone, as without statfs.
    if (free === null || reserve === null || reserve === 0) return this.enospc;
    return this.enospc || free - extraBytes <= reserve;
  }

  /**
   * DISK_FULL when writing `bytes` more would go into the reserve (or an ENOSPC was seen since the
   * last check); null when the write may go ahead. `what` names it in the error.
   */
  refuse(bytes: number, what: string): WalError | null {
    this.refresh();
    if (!this.isFull(bytes)) {
      this.refusedBytes = 0;
      return null;
    }
    this.refusedBytes = bytes;
    const free = this.freeBytes();
    const reserve = this.reserveBytes();
    this.warn(
      'refused',
      { freeBytes: free, reserveBytes: reserve },
      'Disk full: appends and new segments refused',
    );
    const left = free === null ? 'no space left on device' : `${free} bytes free, ${reserve} kept in reserve`;
    return new WalError(
      WalErrorCode.DISK_FULL,
      `${what}: the disk is full (${left}); retry once space is freed`,
    );
  }

  /** An ENOSPC was seen: full until the next statfs, and preallocated space is given back now. */
  noteEnospc(): void {
    const wasFull = this.isFull();
    this.enospc = true;
    // The next admission checks again at once: the ENOSPC may have been one large write.
    this.checkedAtMs = Number.NEGATIVE_INFINITY;
    if (!wasFull) this.onFull();
  }

  /**
   * How many bytes of zeros a background preallocation may write now, up to `stepBytes`: none
   * into the reserve, at most 1/preallocateHeadroomDivisor of the free space above it.
   * `stepBytes` when free space is not known (no statfs).
   */
  preallocateBytes(stepBytes: number): number {
    this.refresh();
    if (this.enospc) return 0;
    const free = this.freeBytes();
    const reserve = this.reserveBytes();
    if (free === null || reserve === null) return stepBytes;
    const headroom = free - reserve;
    if (headroom <= 0) return 0;
    return Math.min(stepBytes, Math.floor(headroom / diskSpaceLimits.preallocateHeadroomDivisor));
  }

  status(): DiskSpaceStatus {
    this.refresh();
    return {
      freeBytes: this.freeBytes(),
      reserveBytes: this.reserveBytes(),
      full: this.isFull(this.refusedBytes),
    };
  }

  /** Logs a warning of this kind unless one was logged within diskWarningIntervalMs (then counts it). */
  warn(kind: DiskWarningKind, fields: Record<string, unknown>, message: string): void {
    const now = this.nowMs();
    const last = this.warnings.get(kind);
    if (last !== undefined && now - last.atMs < diskSpaceLimits.diskWarningIntervalMs) {
      last.suppressed += 1;
      return;
    }
    this.warnings.set(kind, { atMs: now, suppressed: 0 });
    const suppressed = last?.suppressed ?? 0;
    this.logger.warn(suppressed > 0 ? { ...fields, suppressed } : fields, message);
  }
}
