/**
 * Validation of peer messages before the core looks at them: a malformed message (wrong types,
 * non-contiguous entries, terms out of order, a broken snapshot or conf entry) is refused with
 * RaftError(BAD_REQUEST) and changes nothing. Peers are trusted to follow Raft; this guards
 * against corruption and bugs in codecs, so junk never becomes a TypeError deep in the core.
 */
import { decodeConfEntry } from './conf-codec.js';
import { RaftError } from './raft-error.js';
import { type Entry, EntryKind, type Message, MessageType, NONE, type Snapshot } from './types.js';

/** Throws RaftError(BAD_REQUEST) unless `m` is a well-formed message addressed to `selfId`. */
export function validateMessage(m: Message, selfId: number): void {
  const bad = (why: string): never => {
    const o = (typeof m === 'object' && m !== null ? m : {}) as Partial<Record<'type' | 'from', unknown>>;
    const type = typeof o.type === 'string' ? o.type : typeof o.type;
    const from = typeof o.from === 'number' ? o.from : typeof o.from;
    throw new RaftError('BAD_REQUEST', `bad ${type} message from ${from}: ${why}`);
  };
  if (typeof m !== 'object' || m === null) bad('not an object');
  if (!Object.values(MessageType).includes(m.type)) bad('unknown type');
  for (const k of ['from', 'to', 'term', 'logTerm', 'index', 'commit', 'rejectHint'] as const) {
    const v = m[k];
    if (!Number.isSafeInteger(v) || v < 0) bad(`${k} is not a non-negative integer`);
  }
  if (m.from === NONE || m.from === selfId) bad('bad sender');
  if (m.to !== selfId) bad(`addressed to ${m.to}`);
  if (m.logTerm > m.term) bad('logTerm above the message term');
  if (!Array.isArray(m.entries)) bad('entries is not an array');
  let prev = m.index;
  let prevTerm = m.logTerm;
  for (const e of m.entries as readonly unknown[]) {
    if (typeof e !== 'object' || e === null) bad('entry is not an object');
    const { index, term, kind, data } = e as Entry;
    if (index !== prev + 1) bad('entries are not contiguous');
    if (!Number.isSafeInteger(term) || term < prevTerm || term > m.term) bad('entry terms out of order');
    if (!(data instanceof Uint8Array)) bad('entry data is not bytes');
    if (kind === EntryKind.Conf) {
      if (!decodeConfEntry(data)) bad('malformed configuration entry');
    } else if (kind !== EntryKind.Normal) bad('unknown entry kind');
    prev = index;
    prevTerm = term;
  }
  if (m.type === MessageType.Snap) {
    const s = m.snapshot as Snapshot | null | undefined;
    if (typeof s !== 'object' || s === null || !(s.data instanceof Uint8Array)) bad('missing snapshot');
    const meta = s!.meta as Partial<Snapshot['meta']> | undefined;
    if (typeof meta !== 'object' || meta === null) bad('missing snapshot meta');
    const { index, term, conf } = meta!;
    if (!Number.isSafeInteger(index) || index! < 1) bad('snapshot index invalid');
    if (!Number.isSafeInteger(term) || term! < 1 || term! > m.term) bad('snapshot term invalid');
    if (typeof conf !== 'object' || conf === null) bad('snapshot configuration missing');
    const isIds = (v: unknown) => Array.isArray(v) && v.every((x) => Number.isSafeInteger(x) && x > 0);
    if (!isIds(conf!.voters) || !isIds(conf!.learners) || conf!.voters.length === 0) {
      bad('snapshot configuration invalid');
    }
  }
}
