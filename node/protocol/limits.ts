/**
 * Named limits of the wire protocols (framing, binary codec, text codec). Every length field on the
 * wire is checked against one of these before anything is allocated or sliced, so a hostile peer can
 * never make a node buffer more than `frameSizeMaxBytes` per connection.
 *
 * The relations between limits are asserted at load: a frame must hold a full record, a full
 * batch and a full read reply plus their framing.
 */
import assert from 'node:assert';

const kib = 1024;
const mib = 1024 * kib;

export const protocolLimits = {
  /** Bytes of the little-endian u32 length prefix in front of every frame. */
  frameLengthPrefixSizeBytes: 4,
  /** Largest frame payload (after the length prefix) a peer may send: 4 MiB + 64 KiB header room. */
  frameSizeMaxBytes: 4 * mib + 64 * kib,
  /** Default largest record value (DESIGN.md: 1 MiB, configurable by the node). */
  recordSizeMaxBytesDefault: 1 * mib,
  /** Largest Walrus text command: `PUT <topic> ` plus one record of the default size, plus slack. */
  textCommandSizeMaxBytes: 1 * mib + 4 * kib,
  /** Records in one append batch or one read reply. */
  batchRecordCountMax: 10_000,
  /** Sum of record values in one append batch or one read reply. */
  batchSizeMaxBytes: 4 * mib,
  /** Headers per record. */
  recordHeaderCountMax: 64,
  /** Bytes of one header name (UTF-8). */
  recordHeaderNameSizeMaxBytes: 256,
  /** Bytes of one header value (UTF-8). */
  recordHeaderValueSizeMaxBytes: 16 * kib,
  /** Bytes of a topic name on the wire (topic-name.ts allows 200 ASCII characters). */
  topicNameSizeMaxBytes: 200,
  /** Bytes of a consumer name on the wire. */
  consumerNameSizeMaxBytes: 200,
  /** Bytes of a producer id. */
  producerIdSizeMaxBytes: 256,
  /** Bytes of an error message; longer messages are truncated by the encoder. */
  errorMessageSizeMaxBytes: 4 * kib,
  /** Bytes of the client address in a leader hint (`host:port`). */
  leaderAddrSizeMaxBytes: 512,
  /** Longest long poll a read may ask for. */
  readWaitMsMax: 60_000,
  /** Segments listed in one TopicInfo. */
  topicSegmentCountMax: 100_000,
  /** Topics in one listTopics reply. */
  topicListCountMax: 100_000,
  /** Consumers in one consumerList reply (the metadata's consumers per topic). */
  consumerListCountMax: 10_000,
  /** Bytes of a client token (authenticate; the gateway's token documents use the same bound). */
  tokenSizeMaxBytes: 512,
  /** Scopes named in an authenticate reply. */
  scopeCountMax: 16,
  /** Bytes of an admin JSON body (metrics, state). */
  jsonBodySizeMaxBytes: 1 * mib,
} as const;

export type ProtocolLimits = typeof protocolLimits;

assert(protocolLimits.frameSizeMaxBytes < 2 ** 32, 'frame length must fit the u32 prefix');
assert(
  protocolLimits.frameSizeMaxBytes >= protocolLimits.batchSizeMaxBytes + 32 * kib,
  'a frame must hold a full batch plus per-record framing room',
);
assert(protocolLimits.batchSizeMaxBytes >= protocolLimits.recordSizeMaxBytesDefault);
assert(protocolLimits.textCommandSizeMaxBytes <= protocolLimits.frameSizeMaxBytes);
assert(
  protocolLimits.textCommandSizeMaxBytes >=
    protocolLimits.recordSizeMaxBytesDefault + protocolLimits.topicNameSizeMaxBytes + 'PUT  '.length,
  'a text PUT must carry one record of the default size',
);
assert(
  protocolLimits.topicNameSizeMaxBytes <= 255 && protocolLimits.consumerNameSizeMaxBytes <= 255,
  'u8 lengths',
);
assert(protocolLimits.errorMessageSizeMaxBytes <= 0xffff && protocolLimits.leaderAddrSizeMaxBytes <= 0xffff);
assert(
  protocolLimits.recordHeaderValueSizeMaxBytes <= 0xffff && protocolLimits.producerIdSizeMaxBytes <= 0xffff,
);
assert(protocolLimits.jsonBodySizeMaxBytes < protocolLimits.frameSizeMaxBytes);
