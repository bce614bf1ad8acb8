/**
 * RaftIdentity: who this node is, durably, in `raft_meta/identity.bin` next to the Raft log.
 *
 * - `incarnation`: a random id made when this node's raft_meta/ is first created (or, for a
 *   raft_meta/ written by an older version, at the first start of this one). A node whose data
 *   directory is wiped comes back with a new incarnation, so its peers can tell it from the member
 *   the cluster metadata recorded under the same node id and refuse its votes (cluster-identity.ts).
 * - `clusterId`: a random id made once by the node that bootstraps a cluster; a joiner learns it
 *   from the join reply, an upgraded node from the replicated metadata (`setClusterId`). Null until
 *   known. Nodes of different clusters refuse each other.
 *
 * The file is one record framed like snapshot.bin (length | ~length | crc32c | body) and replaced the
 * same way (temp file, fsync, rename, fsync dir): body = type u8 (4) | version u8 | incarnation
 * 16 bytes | flags u8 (1 = cluster id known) | clusterId 16 bytes (zeros while unknown). A damaged
 * file refuses to start (CORRUPT_RECORD): without its identity the node must be re-added.
 */
import assert from 'node:assert/strict';
import path from 'node:path';
import { ByteReader, ByteWriter } from '../protocol/byte-io.js';
import { ErrorCode } from '../protocol/error-codes.js';
import type { FileIo } from '../storage-io/index.js';
import { realFileIo } from '../storage-io/index.js';
import { identityIdSizeBytes, isIdentityId, newIdentityId, zeroIdentityId } from './identity-id.js';
import {
  RecordType,
  corrupt,
  errorMessage,
  frame,
  raftMetaDirOf,
  readWhole,
  replaceFileDurably,
  scanRecord,
  toStorageError,
} from './raft-disk-storage.js';

export { isIdentityId, newIdentityId } from './identity-id.js';

export const raftIdentityFileName = 'identity.bin';
/** identity.bin is one small record; anything bigger is damage. */
const identityFileSizeMaxBytes = 1024;
const identityFormatVersion = 1;
const flagClusterKnown = 1;

export interface RaftIdentityOptions {
  /**
   * True when this node bootstraps a new cluster now (a brand-new raft_meta/ and no --join): only
   * then is a cluster id made here. Any other node learns it (join reply, replicated metadata).
   */
  readonly bootstrapCluster: boolean;
  /** Makes a new id (default newIdentityId: random; the simulator's are seeded). */
  readonly newId?: () => string;
}

export class RaftIdentity {
  readonly incarnation: string;
  /** True when open() made the identity (a new raft_meta/, or one from a version without it). */
  readonly created: boolean;
  private readonly io: FileIo;
  private readonly file: string;
  private cluster: string | null;

  private constructor(
    io: FileIo,
    file: string,
    incarnation: string,
    cluster: string | null,
    created: boolean,
  ) {
    this.io = io;
    this.file = file;
    this.incarnation = incarnation;
    this.cluster = cluster;
    this.created = created;
  }

  /**
   * Reads `dir`/raft_meta/identity.bin (or `dir`/identity.bin when `dir` is raft_meta/ itself), or
   * makes and persists a new identity when there is none. Throws RaftStorageError (CORRUPT_RECORD
   * for a damaged file, DISK_FULL / UNAVAILABLE for write failures).
   */
  static open(dir: string, options: RaftIdentityOptions, io: FileIo = realFileIo): RaftIdentity {
    const metaDir = raftMetaDirOf(dir);
    const file = path.join(metaDir, raftIdentityFileName);
    try {
      if (!io.exists(metaDir)) {
        io.mkdir(metaDir);
        io.fsyncDir(path.dirname(metaDir));
      }
      if (io.exists(`${file}.tmp`)) io.unlink(`${file}.tmp`);
      if (io.exists(file)) {
        const { incarnation, clusterId } = readIdentityFile(io, file);
        return new RaftIdentity(io, file, incarnation, clusterId, false);
      }
      const newId = options.newId ?? newIdentityId;
      const incarnation = newId();
      const clusterId = options.bootstrapCluster ? newId() : null;
      replaceFileDurably(io, file, [frame(identityBody(incarnation, clusterId))]);
      return new RaftIdentity(io, file, incarnation, clusterId, true);
    } catch (error) {
      throw toStorageError(error, `opening ${file}`);
    }
  }

  /** The cluster this node belongs to, or null until it has learnt it. */
  get clusterId(): string | null {
    return this.cluster;
  }

  /**
   * Records the cluster id learnt from a join reply or the replicated metadata, durably, before
   * returning. A node never changes clusters: adopting another id than the one held is a bug.
   */
  adoptClusterId(clusterId: string): void {
    assert.ok(isIdentityId(clusterId), `not a cluster id: ${clusterId}`);
    if (this.cluster === clusterId) return;
    assert.equal(this.cluster, null, `node already in cluster ${this.cluster}, not ${clusterId}`);
    try {
      replaceFileDurably(this.io, this.file, [frame(identityBody(this.incarnation, clusterId))]);
    } catch (error) {
      throw toStorageError(error, `writing ${this.file}`);
    }
    this.cluster = clusterId;
  }
}

function identityBody(incarnation: string, clusterId: string | null): Buffer {
  assert.ok(isIdentityId(incarnation) && (clusterId === null || isIdentityId(clusterId)));
  const w = new ByteWriter(3 + 2 * identityIdSizeBytes);
  w.u8(RecordType.Identity);
  w.u8(identityFormatVersion);
  w.raw(Buffer.from(incarnation, 'hex'));
  w.u8(clusterId === null ? 0 : flagClusterKnown);
  w.raw(Buffer.from(clusterId ?? zeroIdentityId, 'hex'));
  return w.finish();
}

function readIdentityFile(io: FileIo, file: string): { incarnation: string; clusterId: string | null } {
  const buf = readWhole(io, file, identityFileSizeMaxBytes);
  const scan = scanRecord(buf, 0);
  if (scan.kind !== 'ok' || scan.end !== buf.length) {
    throw corrupt(
      file,
      `fails its checksum or framing (${scan.kind === 'ok' ? 'trailing bytes' : scan.reason}); ` +
        'the node identity is lost',
    );
  }
  const r = new ByteReader(scan.body, 0, ErrorCode.CORRUPT_RECORD);
  try {
    if (r.u8('record type') !== RecordType.Identity) r.fail('not an identity record');
    const version = r.u8('format version');
    if (version !== identityFormatVersion) r.fail(`format version ${version} is not supported`);
    const incarnation = r.bytesView(identityIdSizeBytes, 'incarnation').toString('hex');
    const flags = r.u8('flags');
    if ((flags & ~flagClusterKnown) !== 0) r.fail(`unknown flags ${flags}`);
    const cluster = r.bytesView(identityIdSizeBytes, 'cluster id').toString('hex');
    r.end('identity record');
    if (!isIdentityId(incarnation)) r.fail('the incarnation is zero');
    const known = (flags & flagClusterKnown) !== 0;
    if (known !== isIdentityId(cluster)) r.fail('the cluster id does not match its flag');
    return { incarnation, clusterId: known ? cluster : null };
  } catch (error) {
    throw corrupt(file, `cannot be decoded: ${errorMessage(error)}`);
  }
}
