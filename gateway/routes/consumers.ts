/** Named consumers: cursors stored in the cluster (read next with optional auto-commit, commit, get). */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import {
  readByteCountDefault,
  readByteCountMax,
  readRecordCountDefault,
  readRecordCountMax,
} from '../limits.js';
import { readBody } from '../body.js';
import { checkName, parseBoolParam, parseIntParam, parseJsonBody } from '../params.js';
import { recordToJson } from '../records-json.js';
import type { GatewayEnv, RouteDeps } from './deps.js';
import { topicFor } from './deps.js';

export function consumerRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/topics/:topic/consumers/:consumer', async (c) => {
    const topic = topicFor(c, 'read');
    const consumer = checkName('consumer', c.req.param('consumer'));
    const reply = await deps.upstream.request({ op: 'consumerGet', topic, consumer });
    return c.json(reply.consumer);
  });

  app.post('/v1/topics/:topic/consumers/:consumer/read', async (c) => {
    const topic = topicFor(c, 'read');
    const consumer = checkName('consumer', c.req.param('consumer'));
    const recordCountMax =
      parseIntParam('limit', c.req.query('limit'), 1, readRecordCountMax) ?? readRecordCountDefault;
    const byteCountMax =
      parseIntParam('maxBytes', c.req.query('maxBytes'), 1, readByteCountMax) ?? readByteCountDefault;
    const autoCommit = parseBoolParam('autoCommit', c.req.query('autoCommit')) ?? true;
    const reply = await deps.upstream.request({
      op: 'consumerReadNext',
      topic,
      consumer,
      recordCountMax,
      byteCountMax,
      autoCommit,
    });
    c.header('walrus-next-offset', String(reply.nextOffset));
    return c.json({
      records: reply.records.map(recordToJson),
      nextOffset: reply.nextOffset,
      endOffset: reply.endOffset,
    });
  });

  app.post('/v1/topics/:topic/consumers/:consumer/commit', async (c) => {
    const topic = topicFor(c, 'read');
    const consumer = checkName('consumer', c.req.param('consumer'));
    const body = parseJsonBody(c.req.header('content-type'), await readBody(c));
    const { offset, expectedOffset } = (body ?? {}) as { offset?: unknown; expectedOffset?: unknown };
    if (
      typeof body !== 'object' ||
      body === null ||
      Array.isArray(body) ||
      Object.keys(body).some((k) => k !== 'offset' && k !== 'expectedOffset')
    ) {
      throw new WalrusError(
        ErrorCode.BAD_REQUEST,
        'the body must be {"offset": N} or {"offset": N, "expectedOffset": M}',
      );
    }
    if (!Number.isSafeInteger(offset) || (offset as number) < 0) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'offset must be a non-negative integer');
    }
    if (
      expectedOffset !== undefined &&
      (!Number.isSafeInteger(expectedOffset) || (expectedOffset as number) < 0)
    ) {
      throw new WalrusError(ErrorCode.BAD_REQUEST, 'expectedOffset must be a non-negative integer');
    }
    const reply = await deps.upstream.request({
      op: 'consumerCommit',
      topic,
      consumer,
      offset: offset as number,
      ...(expectedOffset === undefined ? {} : { expectedOffset: expectedOffset as number }),
    });
    return c.json(reply.consumer);
  });
}
