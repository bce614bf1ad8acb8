/**
 * JSON request bodies parsed strictly: the bytes must be well-formed UTF-8 and no string in the
 * parsed value (key or value) may hold a lone surrogate (a `\ud800` escape with no pair). Either
 * would otherwise reach the log as U+FFFD in place of what the client sent: silent corruption of
 * a record, so it is a 400 BAD_REQUEST (quoting the start of the bad string).
 */
import { Buffer, isAscii } from 'node:buffer';
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';

/** One decoder for all: `fatal` makes invalid UTF-8 throw instead of turning into U+FFFD. */
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

/** ES2024's String.prototype.isWellFormed (in Node 20), not in the ES2023 lib this project builds against. */
function isWellFormed(text: string): boolean {
  return (text as string & { isWellFormed(): boolean }).isWellFormed();
}

/** How much of a bad string the error message quotes. */
const quotedCharCountMax = 40;

/** Parses `bytes` as JSON; throws BAD_REQUEST for invalid UTF-8, invalid JSON or lone surrogates. */
export function parseStrictJson(bytes: Uint8Array): unknown {
  let text: string;
  try {
    // ASCII (most bodies) is valid UTF-8 and decodes byte for byte, more cheaply.
    text = isAscii(bytes)
      ? Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1')
      : utf8.decode(bytes);
  } catch {
    throw new WalrusError(
      ErrorCode.BAD_REQUEST,
      'the body is not valid UTF-8 (JSON text must be UTF-8; send bytes that are not text base64-encoded)',
    );
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new WalrusError(ErrorCode.BAD_REQUEST, 'the body is not valid JSON');
  }
  // Valid UTF-8 cannot encode a surrogate, so a lone one can only come from a `\u` escape: text
  // without one (most bodies) needs no walk of the parsed value.
  const bad = text.includes('\\u') ? firstIllFormedString(value) : undefined;
  if (bad !== undefined) {
    const shown = JSON.stringify(bad.slice(0, quotedCharCountMax));
    throw new WalrusError(
      ErrorCode.BAD_REQUEST,
      `the body holds a string with a lone surrogate (a \\uD800-\\uDFFF escape without its pair), which is not text: ${shown}`,
    );
  }
  return value;
}

/**
 * The first string in a parsed JSON value that is not well-formed UTF-16, or undefined. Iterative
 * (an explicit stack): a deeply nested body must not overflow the call stack.
 */
function firstIllFormedString(root: unknown): string | undefined {
  const stack: unknown[] = [root];
  while (stack.length > 0) {
    const value = stack.pop();
    if (typeof value === 'string') {
      if (!isWellFormed(value)) return value;
    } else if (Array.isArray(value)) {
      for (const item of value) stack.push(item);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        if (!isWellFormed(key)) return key;
        stack.push(item);
      }
    }
  }
  return undefined;
}
