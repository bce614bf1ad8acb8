/**
 * The event format of a multi-topic SSE tail (GET /v1/tail): every record event is `event: record`
 * with the record JSON plus its `topic`, and its `id:` lists every tailed topic's next offset
 * (`a:6,b:0`), so a `Last-Event-ID` resumes all of them at once. Topic names hold neither `:` nor
 * `,` (node/protocol/topic-name.ts), so the id needs no escaping.
 *
 * One MultiTailFormat is shared by the tail's per-topic subscribers of the hub (one per topic,
 * same sink): the hub delivers each topic's records in offset order, and the format advances that
 * topic's position as it writes each event.
 */
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import type { StoredRecord } from '../../node/protocol/messages.js';
import { topicNameProblem } from '../../node/protocol/topic-name.js';
import { recordToJson } from '../records-json.js';
import type { EventFormat } from './tail-hub.js';

/** The SSE event name of a record in a multi-topic tail. */
export const multiTailRecordEvent = 'record';

const positionPattern = /^([A-Za-z0-9._-]{1,200}):([0-9]{1,16})$/;

/** Parses `name:offset` (a query `topic` value or an id entry); offset undefined for a bare name. */
export function parseTopicPosition(
  raw: string,
  what: string,
): { readonly topic: string; readonly offset: number | undefined } {
  const m = positionPattern.exec(raw);
  const topic = m === null ? raw : m[1]!;
  const problem = topicNameProblem(topic);
  if (problem !== undefined) throw new WalrusError(ErrorCode.BAD_REQUEST, `${what}: ${problem}`);
  if (m === null) return { topic, offset: undefined };
  const offset = Number(m[2]);
  if (!Number.isSafeInteger(offset))
    throw new WalrusError(ErrorCode.BAD_REQUEST, `${what}: offset too large`);
  return { topic, offset };
}

/** Parses a multi-topic `Last-Event-ID` (`a:6,b:0`) into next offsets by topic. */
export function parseMultiTailId(raw: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const entry of raw.split(',')) {
    const { topic, offset } = parseTopicPosition(entry.trim(), 'Last-Event-ID');
    if (offset === undefined)
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'Last-Event-ID entries are topic:offset');
    out.set(topic, offset);
  }
  return out;
}

export class MultiTailFormat implements EventFormat {
  /** Next offset of every tailed topic, in the order the client named them. */
  private readonly next: Map<string, number>;

  constructor(starts: ReadonlyMap<string, number>) {
    this.next = new Map(starts);
  }

  /** The `id:` value for the current positions. */
  id(): string {
    let out = '';
    for (const [topic, offset] of this.next) out += `${out === '' ? '' : ','}${topic}:${offset}`;
    return out;
  }

  events(topic: string, records: readonly StoredRecord[]): string {
    let text = '';
    for (const record of records) {
      this.next.set(topic, record.offset + 1);
      text += `event: ${multiTailRecordEvent}\nid: ${this.id()}\ndata: ${JSON.stringify({ topic, ...recordToJson(record) })}\n\n`;
    }
    return text;
  }

  resume(): Record<string, unknown> {
    return { resumeId: this.id() };
  }
}
