/**
 * Topic names become directory names on disk, so they are checked at every boundary and never
 * turned into a path unless they pass: `^[A-Za-z0-9._-]{1,200}$`, and not `.` or `..`.
 */
import { ErrorCode, WalrusError } from './error-codes.js';

export const topicNameLengthMaxBytes = 200;
const topicNamePattern = /^[A-Za-z0-9._-]{1,200}$/;

/** Returns undefined when the name is valid, or the reason it is not. */
export function topicNameProblem(name: string): string | undefined {
  if (name.length === 0) return 'topic name is empty';
  if (name.length > topicNameLengthMaxBytes)
    return `topic name is longer than ${topicNameLengthMaxBytes} characters`;
  if (name === '.' || name === '..') return `topic name '${name}' is not allowed`;
  if (!topicNamePattern.test(name)) return 'topic name may contain only letters, digits, ".", "_" and "-"';
  return undefined;
}

/** Throws INVALID_TOPIC_NAME unless the name is valid. */
export function assertTopicName(name: string): void {
  const problem = topicNameProblem(name);
  if (problem !== undefined) throw new WalrusError(ErrorCode.INVALID_TOPIC_NAME, problem);
}
