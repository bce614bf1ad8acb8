/**
 * Query, header and path parameter parsing against the limits of openapi.yaml. Every failure is a
 * BAD_REQUEST (or INVALID_TOPIC_NAME) naming the parameter, never a crash or a silent default.
 */
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import { topicNameProblem } from '../node/protocol/topic-name.js';
import { parseStrictJson } from './strict-json.js';

const safeIntegerMax = Number.MAX_SAFE_INTEGER;
const digitsPattern = /^[0-9]{1,16}$/;

export function parseIntParam(
  name: string,
  raw: string | undefined,
  min: number,
  max = safeIntegerMax,
): number | undefined {
  if (raw === undefined) return undefined;
  if (!digitsPattern.test(raw))
    throw new WalrusError(ErrorCode.BAD_REQUEST, `${name} must be a non-negative integer`);
  const value = Number(raw);
  if (value < min || value > max)
    throw new WalrusError(ErrorCode.BAD_REQUEST, `${name} must be between ${min} and ${max}`);
  return value;
}

export function parseBoolParam(name: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new WalrusError(ErrorCode.BAD_REQUEST, `${name} must be true or false`);
}

/** One of `values`, exactly (case-sensitive); absent gives undefined. */
export function parseEnumParam<T extends string>(
  name: string,
  raw: string | undefined,
  values: readonly T[],
): T | undefined {
  if (raw === undefined) return undefined;
  if (!(values as readonly string[]).includes(raw))
    throw new WalrusError(ErrorCode.BAD_REQUEST, `${name} must be one of ${values.join(', ')}`);
  return raw as T;
}

/** A path segment naming a topic or a consumer: the same rules as file names on the nodes. */
export function checkName(kind: 'topic' | 'consumer', name: string): string {
  const problem = topicNameProblem(name);
  if (problem !== undefined) {
    throw new WalrusError(
      kind === 'topic' ? ErrorCode.INVALID_TOPIC_NAME : ErrorCode.BAD_REQUEST,
      kind === 'topic' ? problem : problem.replace('topic name', 'consumer name'),
    );
  }
  return name;
}

/** Parses a JSON request body strictly (strict-json.ts); anything not application/json is 415. */
export function parseJsonBody(contentType: string | undefined, bytes: Uint8Array): unknown {
  if (!isJsonContentType(contentType)) {
    throw new WalrusError(ErrorCode.UNSUPPORTED_MEDIA_TYPE, 'the body must be application/json');
  }
  return parseStrictJson(bytes);
}

export function isJsonContentType(contentType: string | undefined): boolean {
  return contentType !== undefined && /^application\/(?:[\w.+-]+\+)?json\s*(?:;|$)/i.test(contentType);
}
