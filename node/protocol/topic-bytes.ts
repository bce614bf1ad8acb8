/**
 * Topic names on the wire (u8 length + UTF-8, checked by topic-name.ts), with a one-entry cache
 * each way. A connection's requests are mostly about one topic: decoding its name (UTF-8 decode
 * plus the name pattern) and encoding it (a Buffer per name) for every append was a visible part
 * of the binary hot path; the cache answers a repeat with the string or the bytes of last time,
 * which passed the same checks. One entry, so nothing grows.
 */
import { checkTopic } from './binary-bodies.js';
import type { ByteReader, ByteWriter } from './byte-io.js';
import { protocolLimits as L } from './limits.js';

/** The last name read: its bytes (a copy) and its string. */
let readBytes: Buffer = Buffer.alloc(0);
let readName = '';
/** The last name written: its string and its bytes. */
let writtenName = '';
let writtenBytes: Buffer = Buffer.alloc(0);

function sameBytes(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Reads a topic name; fails (INVALID_TOPIC_NAME, BAD_REQUEST) like `checkTopic(r.str8(…))`. */
export function readTopicName(r: ByteReader): string {
  const view = r.view8('topic name', L.topicNameSizeMaxBytes, 1);
  if (sameBytes(view, readBytes)) return readName;
  const name = checkTopic(r.utf8(view, 'topic name'));
  readBytes = Buffer.from(view);
  readName = name;
  return name;
}

/** A topic name's UTF-8 bytes (not to be changed); throws INVALID_TOPIC_NAME like `checkTopic`. */
export function topicNameBytes(name: string): Buffer {
  if (name !== writtenName || writtenName === '') {
    const bytes = Buffer.from(checkTopic(name), 'utf8');
    writtenName = name;
    writtenBytes = bytes;
  }
  return writtenBytes;
}

/** Writes a topic name; throws INVALID_TOPIC_NAME like `w.str8(checkTopic(…))`. */
export function writeTopicName(w: ByteWriter, name: string): void {
  const bytes = topicNameBytes(name);
  w.u8(bytes.length);
  w.raw(bytes);
}
