/**
 * The Walrus text protocol (seeds 002/004): a frame payload is a UTF-8 command, a reply is a UTF-8
 * line, both framed like every message on the port (frame.ts).
 *
 * Commands (keywords case-insensitive):
 *   REGISTER <topic>          create the topic if it does not exist
 *   PUT <topic> <payload>     append one record; payload = every byte after the space that follows
 *                             the topic (may contain spaces; may be empty: `PUT t ` appends an
 *                             empty record; `PUT t` without that space is BAD_REQUEST)
 *   GET <topic>               read the next record through the topic's shared consumer
 *   STATE <topic>             topic JSON (seed 002)
 *   METRICS                   node JSON (seed 002 plus the Raft metrics Walrus serialises)
 * For every command but PUT, trailing ASCII whitespace (e.g. the newline `echo` adds) is ignored.
 * Replies: `OK`, `OK <payload>`, `EMPTY`, `ERR <CODE> <message>` (CODE from error-codes.ts), and
 * for STATE and METRICS the JSON object alone, with no `OK ` in front, as Walrus sends it.
 */
import assert from 'node:assert';
import { ErrorCode, isErrorCode, WalrusError } from './error-codes.js';
import { protocolLimits } from './limits.js';
import { topicNameProblem } from './topic-name.js';

export type TextCommand =
  | { readonly kind: 'REGISTER'; readonly topic: string }
  | { readonly kind: 'PUT'; readonly topic: string; readonly value: Buffer }
  | { readonly kind: 'GET'; readonly topic: string }
  | { readonly kind: 'STATE'; readonly topic: string }
  | { readonly kind: 'METRICS' };

export type TextCommandKind = TextCommand['kind'];

export type TextParseResult =
  | { readonly ok: true; readonly command: TextCommand }
  | { readonly ok: false; readonly error: WalrusError };

export type TextReply =
  | { readonly kind: 'OK'; readonly payload?: Uint8Array | string }
  | { readonly kind: 'EMPTY' }
  /** A JSON object sent as the whole reply (STATE, METRICS). */
  | { readonly kind: 'JSON'; readonly json: string }
  | { readonly kind: 'ERR'; readonly code: ErrorCode; readonly message: string };

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });
const space = 0x20;
const openBrace = 0x7b;
const topicCommands = new Set(['REGISTER', 'GET', 'STATE']);

function failure(code: ErrorCode, message: string): TextParseResult {
  return { ok: false, error: new WalrusError(code, message) };
}

function isTrailingSpace(byte: number): boolean {
  return byte === space || byte === 0x09 || byte === 0x0a || byte === 0x0d;
}

function topicOf(raw: string, keyword: string): TextParseResult | string {
  if (raw.length === 0) return failure(ErrorCode.BAD_REQUEST, `${keyword} needs a topic: ${keyword} <topic>`);
  const problem = topicNameProblem(raw);
  if (problem !== undefined) return failure(ErrorCode.INVALID_TOPIC_NAME, problem);
  return raw;
}

/** Parses one text command payload. Never throws. */
export function parseTextCommand(payload: Uint8Array): TextParseResult {
  const bytes = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (bytes.length > protocolLimits.textCommandSizeMaxBytes) {
    return failure(
      ErrorCode.FRAME_TOO_LARGE,
      `text command of ${bytes.length} bytes exceeds ${protocolLimits.textCommandSizeMaxBytes}`,
    );
  }
  try {
    utf8Decoder.decode(bytes);
  } catch {
    return failure(ErrorCode.BAD_REQUEST, 'the command is not valid UTF-8');
  }
  const keywordEnd = bytes.indexOf(space);
  const keywordBytes = keywordEnd === -1 ? bytes : bytes.subarray(0, keywordEnd);
  let end = keywordBytes.length;
  if (keywordEnd === -1) while (end > 0 && isTrailingSpace(keywordBytes[end - 1]!)) end -= 1;
  const keyword = keywordBytes.subarray(0, end).toString('utf8').toUpperCase();
  const rest = keywordEnd === -1 ? Buffer.alloc(0) : bytes.subarray(keywordEnd + 1);

  if (keyword === 'PUT') {
    const topicEnd = rest.indexOf(space);
    if (topicEnd === -1) {
      return failure(ErrorCode.BAD_REQUEST, 'PUT needs a topic and a payload: PUT <topic> <payload>');
    }
    const topic = topicOf(rest.subarray(0, topicEnd).toString('utf8'), 'PUT');
    if (typeof topic !== 'string') return topic;
    return { ok: true, command: { kind: 'PUT', topic, value: rest.subarray(topicEnd + 1) } };
  }
  if (keyword === 'METRICS') {
    if (rest.toString('utf8').trim().length > 0)
      return failure(ErrorCode.BAD_REQUEST, 'METRICS takes no arguments');
    return { ok: true, command: { kind: 'METRICS' } };
  }
  if (topicCommands.has(keyword)) {
    const args = rest.toString('utf8').replace(/[ \t\r\n]+$/, '');
    if (args.includes(' '))
      return failure(ErrorCode.BAD_REQUEST, `${keyword} takes one argument: ${keyword} <topic>`);
    const topic = topicOf(args, keyword);
    if (typeof topic !== 'string') return topic;
    return { ok: true, command: { kind: keyword as 'REGISTER' | 'GET' | 'STATE', topic } };
  }
  if (keyword.length === 0) return failure(ErrorCode.BAD_REQUEST, 'empty command');
  const shown = keyword.length > 32 ? `${keyword.slice(0, 32)}…` : keyword;
  return failure(
    ErrorCode.UNKNOWN_COMMAND,
    `unknown command '${shown}' (REGISTER, PUT, GET, STATE, METRICS)`,
  );
}

/** Encodes a text reply payload (without the length prefix). ERR messages are kept on one line. */
export function encodeTextReply(reply: TextReply): Buffer {
  switch (reply.kind) {
    case 'OK':
      if (reply.payload === undefined) return Buffer.from('OK', 'utf8');
      return Buffer.concat([Buffer.from('OK ', 'utf8'), Buffer.from(reply.payload)]);
    case 'EMPTY':
      return Buffer.from('EMPTY', 'utf8');
    case 'JSON':
      assert.ok(reply.json.startsWith('{'), 'a JSON reply is an object');
      return Buffer.from(reply.json, 'utf8');
    case 'ERR': {
      const message = reply.message.replace(/[\r\n]+/g, ' ');
      const limited =
        message.length > protocolLimits.errorMessageSizeMaxBytes
          ? message.slice(0, protocolLimits.errorMessageSizeMaxBytes)
          : message;
      return Buffer.from(`ERR ${reply.code} ${limited}`, 'utf8');
    }
  }
}

/** The text ERR reply for an error: `ERR <CODE> <message>`. */
export function encodeTextError(error: { readonly code: ErrorCode; readonly message: string }): Buffer {
  return encodeTextReply({ kind: 'ERR', code: error.code, message: error.message });
}

export type ParsedTextReply =
  | { readonly kind: 'OK'; readonly payload: Buffer | undefined }
  | { readonly kind: 'EMPTY' }
  /** The whole reply is a JSON object (STATE, METRICS); `payload` is its bytes, not yet parsed. */
  | { readonly kind: 'JSON'; readonly payload: Buffer }
  | { readonly kind: 'ERR'; readonly code: ErrorCode | undefined; readonly message: string }
  | { readonly kind: 'UNKNOWN'; readonly text: string };

/**
 * Parses a text reply (client side). An `ERR` whose first word is not a known code (an older
 * Walrus server, e.g. `ERR NotLeaderError`) gives code undefined and the whole text as message.
 */
export function parseTextReply(payload: Uint8Array): ParsedTextReply {
  const bytes = Buffer.isBuffer(payload)
    ? payload
    : Buffer.from(payload.buffer, payload.byteOffset, payload.length);
  if (bytes.length === 2 && bytes.toString('latin1') === 'OK') return { kind: 'OK', payload: undefined };
  if (bytes.length >= 3 && bytes.toString('latin1', 0, 3) === 'OK ')
    return { kind: 'OK', payload: bytes.subarray(3) };
  if (bytes.length > 0 && bytes[0] === openBrace) return { kind: 'JSON', payload: bytes };
  const text = bytes.toString('utf8');
  if (text === 'EMPTY') return { kind: 'EMPTY' };
  if (text === 'ERR' || text.startsWith('ERR ')) {
    const body = text.slice(4);
    const space = body.indexOf(' ');
    const word = space === -1 ? body : body.slice(0, space);
    if (isErrorCode(word))
      return { kind: 'ERR', code: word, message: space === -1 ? '' : body.slice(space + 1) };
    return { kind: 'ERR', code: undefined, message: body };
  }
  return { kind: 'UNKNOWN', text };
}
