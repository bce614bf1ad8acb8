/**
 * Named consumers: cursors stored in the cluster (list, get, delete, read next with optional
 * auto-commit and long poll, commit). A read answers the topic's true end and the consumer's lag.
 *
 * The long poll (`waitMs`) waits at the topic's segment leader, not at the consumer: when the
 * cursor is at the end, the gateway long-polls a plain `read` at the cursor (which returns as soon as
 * a record is there) and then reads through the consumer again, until records come or the wait is
 * over. The node's per-consumer lock is so never held across a wait, and a commit or another reader
 * of the same consumer is not blocked behind one.
 */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import type { ResponseOf } from '../../node/protocol/messages.js';
import { readBody } from '../body.js';
import {
  consumerWaitRoundCountMax,
  readByteCountDefault,
  readByteCountMax,
  readRecordCountDefault,
  readRecordCountMax,
  readWaitMsMax,
  upstreamTimeoutMs,
} from '../limits.js';
import {
  checkName,
  checkQuery,
  parseBoolParam,
  parseIntParam,
  parseJsonBody,
  queryParamsByOperation,
} from '../params.js';
import { recordToJson } from '../records-json.js';
import type { GatewayEnv, RouteDeps } from './deps.js';
import { topicFor } from './deps.js';

export function consumerRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/topics/:topic/consumers', async (c) => {
    checkQuery(c.req.url);
    const topic = topicFor(c, 'read');
    const reply = await deps.upstream.request({ op: 'consumerList', topic });
    return c.json({ consumers: reply.consumers });
  });

  app.get('/v1/topics/:topic/consumers/:consumer', async (c) => {
    checkQuery(c.req.url);
    const topic = topicFor(c, 'read');
    const consumer = checkName('consumer', c.req.param('consumer'));
    const reply = await deps.upstream.request({ op: 'consumerGet', topic, consumer });
    return c.json(reply.consumer);
  });

  app.delete('/v1/topics/:topic/consumers/:consumer', async (c) => {
    checkQuery(c.req.url);
    const topic = topicFor(c, 'admin');
    const consumer = checkName('consumer', c.req.param('consumer'));
    const reply = await deps.upstream.request({ op: 'consumerDelete', topic, consumer });
    if (!reply.deleted) {
      throw new WalrusError(
        ErrorCode.CONSUMER_NOT_FOUND,
        `consumer '${consumer}' has no cursor on topic '${topic}'`,
      );
    }
    return c.body(null, 204);
  });

  app.post('/v1/topics/:topic/consumers/:consumer/read', async (c) => {
    checkQuery(c.req.url, queryParamsByOperation.consumerReadNext);
    const topic = topicFor(c, 'read');
    const consumer = checkName('consumer', c.req.param('consumer'));
    const recordCountMax =
      parseIntParam('limit', c.req.query('limit'), 1, readRecordCountMax) ?? readRecordCountDefault;
    const byteCountMax =
      parseIntParam('maxBytes', c.req.query('maxBytes'), 1, readByteCountMax) ?? readByteCountDefault;
    const autoCommit = parseBoolParam('autoCommit', c.req.query('autoCommit')) ?? true;
    const waitMs = parseIntParam('waitMs', c.req.query('waitMs'), 0, readWaitMsMax) ?? 0;
    const deadline = performance.now() + waitMs;
    const readNext = () =>
      deps.upstream.request({
        op: 'consumerReadNext',
        topic,
        consumer,
        recordCountMax,
        byteCountMax,
        autoCommit,
      });
    let reply: ResponseOf<'consumerReadNext'> = await readNext();
    // Bounded twice: by the deadline and by a round count (another reader of the same consumer may
    // take the records each time they arrive).
    for (let round = 0; reply.records.length === 0 && round < consumerWaitRoundCountMax; round++) {
      const leftMs = Math.floor(deadline - performance.now());
      if (leftMs <= 0 || c.req.raw.signal.aborted) break;
      const poll = await deps.upstream.request(
        { op: 'read', topic, offset: reply.nextOffset, recordCountMax: 1, byteCountMax: 1, waitMs: leftMs },
        { timeoutMs: leftMs + upstreamTimeoutMs, signal: c.req.raw.signal },
      );
      if (poll.records.length === 0) break; // the wait ran out with nothing new
      reply = await readNext();
    }
    c.header('walrus-next-offset', String(reply.nextOffset));
    return c.json({
      records: reply.records.map(recordToJson),
      nextOffset: reply.nextOffset,
      endOffset: reply.endOffset,
      lag: Math.max(0, reply.endOffset - reply.nextOffset),
    });
  });

  app.post('/v1/topics/:topic/consumers/:consumer/commit', async (c) => {
    checkQuery(c.req.url);
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
