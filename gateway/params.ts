/**
 * Query, header and path parameter parsing against the limits of openapi.yaml. Every failure is a
 * BAD_REQUEST (or INVALID_TOPIC_NAME) naming the parameter, never a crash or a silent default.
 * `checkQuery` refuses query parameters an operation does not define (a typo such as `?ofset=3`
 * must not quietly read from offset 0) and repeated ones; `queryParamsByOperation` is the one list
 * of what each operation takes, tied to openapi.yaml by test/unit/gateway/query-params.test.ts.
 */
import { ErrorCode, WalrusError } from '../node/protocol/error-codes.js';
import { topicNameProblem } from '../node/protocol/topic-name.js';
import { ProblemError } from './middleware/problem.js';
import { parseStrictJson } from './strict-json.js';

/** The query parameters of each operation (by operationId), as openapi.yaml lists them. */
export const queryParamsByOperation = {
  listTopics: ['prefix', 'limit', 'cursor', 'access_token'],
  readRecords: ['offset', 'timestamp', 'tailOffset', 'limit', 'maxBytes', 'clamp', 'waitMs', 'access_token'],
  appendRecords: ['acks', 'access_token'],
  consumerReadNext: ['limit', 'maxBytes', 'autoCommit', 'waitMs', 'access_token'],
  tailTopics: ['topic', 'access_token'],
} as const satisfies Record<string, readonly string[]>;

/** Query parameters that may appear more than once (each occurrence is one value). */
const repeatableQueryParams: ReadonlySet<string> = new Set(['topic']);

/** Query parameters of an operation without any of its own: only the token. */
const tokenOnly: readonly string[] = ['access_token'];

/**
 * Refuses a query parameter `allowed` does not hold, or one given twice, with BAD_REQUEST naming
 * it. Cheap when there is no query string (the append hot path usually has none).
 */
export function checkQuery(url: string, allowed: readonly string[] = tokenOnly): void {
  const q = url.indexOf('?');
  if (q < 0 || q === url.length - 1) return;
  const seen = new Set<string>();
  for (const name of new URLSearchParams(url.slice(q + 1)).keys()) {
    if (!allowed.includes(name)) {
      throw badParameter(
        name,
        `unknown query parameter '${name.slice(0, 64)}'; this operation takes ${allowed.join(', ')}`,
      );
    }
    if (seen.has(name) && !repeatableQueryParams.has(name))
      throw badParameter(name, `query parameter '${name}' is given more than once`);
    seen.add(name);
  }
}

/** BAD_REQUEST whose problem body names the parameter (`parameter`). */
export function badParameter(name: string, detail: string): ProblemError {
  return new ProblemError(ErrorCode.BAD_REQUEST, detail, { parameter: name.slice(0, 64) });
}

const safeIntegerMax = Number.MAX_SAFE_INTEGER;
const digitsPattern = /^[0-9]{1,16}$/;

export function parseIntParam(
  name: string,
  raw: string | undefined,
  min: number,
  max = safeIntegerMax,
): number | undefined {
  if (raw === undefined) return undefined;
  if (!digitsPattern.test(raw)) throw badParameter(name, `${name} must be a non-negative integer`);
  const value = Number(raw);
  if (value < min || value > max) throw badParameter(name, `${name} must be between ${min} and ${max}`);
  return value;
}

export function parseBoolParam(name: string, raw: string | undefined): boolean | undefined {
  if (raw === undefined) return undefined;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw badParameter(name, `${name} must be true or false`);
}

/** One of `values`, exactly (case-sensitive); absent gives undefined. */
export function parseEnumParam<T extends string>(
  name: string,
  raw: string | undefined,
  values: readonly T[],
): T | undefined {
  if (raw === undefined) return undefined;
  if (!(values as readonly string[]).includes(raw))
    throw badParameter(name, `${name} must be one of ${values.join(', ')}`);
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
