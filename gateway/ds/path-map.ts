/**
 * DS path ↔ topic. A DS path (`/v1/stream/...`) may hold any character, our topic names only
 * `[A-Za-z0-9._-]`: the topic of a stream is `ds.` + the first 40 hex digits of SHA-256 of its
 * decoded path, and the path itself is stored in the topic's metadata (StreamMeta.path), so the
 * mapping is never a lossy rename: two paths that would share a digest are told apart by the
 * stored path (the node refuses the second with CONFLICT). Paths that cannot be mapped (bad
 * percent-encoding, control characters, `.`/`..` segments, above 1024 bytes) are refused with
 * BAD_REQUEST naming the reason.
 */
import { createHash } from 'node:crypto';
import { badRequest } from './protocol.js';

export const dsRoutePrefix = '/v1/stream/';
export const dsPathSizeMaxBytes = 1024;
export const dsTopicPrefix = 'ds.';

/** The decoded stream path (starting `/v1/stream/`) of a raw request path; throws BAD_REQUEST. */
export function streamPathOf(rawPath: string): string {
  if (!rawPath.startsWith(dsRoutePrefix) || rawPath.length === dsRoutePrefix.length)
    throw badRequest('a stream path needs a name after /v1/stream/', 'path');
  let decoded: string;
  try {
    const segments = rawPath.split('/').map((segment) => decodeURIComponent(segment));
    if (segments.some((s) => s.includes('/'))) throw new URIError('encoded slash');
    decoded = segments.join('/');
  } catch {
    throw badRequest('the stream path has invalid percent-encoding (or an encoded /)', 'path');
  }
  if (/[\u0000-\u001f\u007f]/.test(decoded))
    throw badRequest('the stream path holds control characters', 'path');
  if (decoded.split('/').some((s) => s === '.' || s === '..'))
    throw badRequest('the stream path holds a . or .. segment', 'path');
  if (Buffer.byteLength(decoded, 'utf8') > dsPathSizeMaxBytes)
    throw badRequest(`the stream path is above ${dsPathSizeMaxBytes} bytes`, 'path');
  return decoded;
}

export function topicOfStream(streamPath: string): string {
  return dsTopicPrefix + createHash('sha256').update(streamPath, 'utf8').digest('hex').slice(0, 40);
}
