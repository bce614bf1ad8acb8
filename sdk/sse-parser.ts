/**
 * An incremental Server-Sent Events parser (WHATWG HTML §9.2.6), tested without a network: feed it
 * decoded text in any chunking and it calls back once per dispatched event. Lines longer than
 * `lineLengthMax` raise an error instead of growing a buffer without bound.
 */

export interface SseEvent {
  /** The `event:` field; "message" when absent. */
  readonly event: string;
  readonly data: string;
  /** The last event id seen on the stream so far (carried over from earlier events, as the spec says). */
  readonly id: string;
}

export const sseLineLengthMaxDefault = 4 * 1024 * 1024;

export class SseParser {
  private buffer = '';
  private data: string[] = [];
  private eventType = '';
  private lastId = '';
  private sawCr = false;
  /** Reconnection delay the server asked for with `retry:`, if any. */
  retryMs: number | undefined;
  private readonly onEvent: (event: SseEvent) => void;
  private readonly lineLengthMax: number;

  constructor(
    onEvent: (event: SseEvent) => void,
    options: { lineLengthMax?: number; lastEventId?: string } = {},
  ) {
    this.onEvent = onEvent;
    this.lineLengthMax = options.lineLengthMax ?? sseLineLengthMaxDefault;
    this.lastId = options.lastEventId ?? '';
  }

  get lastEventId(): string {
    return this.lastId;
  }

  push(text: string): void {
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const ch = text.charCodeAt(i);
      if (ch === 10 && this.sawCr) {
        // The LF of a CRLF pair: the line already ended at the CR.
        this.sawCr = false;
        start = i + 1;
        continue;
      }
      this.sawCr = false;
      if (ch === 10 || ch === 13) {
        this.buffer += text.slice(start, i);
        this.line(this.buffer);
        this.buffer = '';
        start = i + 1;
        this.sawCr = ch === 13;
      }
    }
    this.buffer += text.slice(start);
    if (this.buffer.length > this.lineLengthMax) {
      this.buffer = '';
      throw new Error(`an SSE line is longer than ${this.lineLengthMax} characters`);
    }
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.eventType = value;
    else if (field === 'id') {
      if (!value.includes('\0')) this.lastId = value;
    } else if (field === 'retry' && /^[0-9]+$/.test(value)) this.retryMs = Number(value);
  }

  private dispatch(): void {
    if (this.data.length === 0) {
      this.eventType = '';
      return;
    }
    const event: SseEvent = {
      event: this.eventType || 'message',
      data: this.data.join('\n'),
      id: this.lastId,
    };
    this.data = [];
    this.eventType = '';
    this.onEvent(event);
  }
}
