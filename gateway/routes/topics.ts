/**
 * Topic routes: create (idempotent; retention and replication factor), list, describe (with each
 * segment's replicas and epoch), configure retention, delete.
 */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import {
  type RetentionSettings,
  replicationFactorMax,
  type TopicInfo,
} from '../../node/protocol/messages.js';
import { allowsTopic, requireScope } from '../middleware/auth.js';
import { readBody } from '../body.js';
import { checkName, parseJsonBody } from '../params.js';
import type { GatewayEnv, RouteDeps } from './deps.js';
import { topicFor } from './deps.js';

export function topicToJson(t: TopicInfo) {
  return {
    name: t.name,
    retention: { retentionMs: t.retention.retentionMs, retentionBytes: t.retention.retentionBytes },
    startOffset: t.startOffset,
    endOffset: t.endOffset,
    currentSegmentId: t.currentSegmentId,
    leaderNodeId: t.leaderNodeId,
    segments: t.segments.map((s) => ({
      id: s.id,
      baseOffset: s.baseOffset,
      endOffset: s.endOffset,
      sealed: s.sealed,
      leaderNodeId: s.leaderNodeId,
      replicas: [...s.replicas],
      epoch: s.epoch,
    })),
    createdAt: t.createdAtMs,
    replicationFactor: t.replicationFactor,
    underReplicatedSegmentCount: t.underReplicatedSegmentCount,
  };
}

function bad(detail: string): never {
  throw new WalrusError(ErrorCode.BAD_REQUEST, detail);
}

function parseRetention(value: unknown): Partial<RetentionSettings> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad('retention must be an object');
  const out: { retentionMs?: number | null; retentionBytes?: number | null } = {};
  for (const [key, v] of Object.entries(value)) {
    if (key !== 'retentionMs' && key !== 'retentionBytes')
      bad(`retention: unknown field '${key.slice(0, 64)}'`);
    if (v !== null && !(Number.isSafeInteger(v) && (v as number) >= 1))
      bad(`retention.${key} must be a positive integer or null`);
    out[key] = v as number | null;
  }
  return out;
}

function parseReplicationFactor(value: unknown): number {
  if (!Number.isSafeInteger(value) || (value as number) < 1 || (value as number) > replicationFactorMax)
    bad(`replicationFactor must be an integer from 1 to ${replicationFactorMax}`);
  return value as number;
}

function parseObject(value: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    bad('the body must be a JSON object');
  for (const key of Object.keys(value))
    if (!allowed.includes(key)) bad(`unknown field '${key.slice(0, 64)}'`);
  return value as Record<string, unknown>;
}

export function topicRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/topics', async (c) => {
    const principal = c.get('principal');
    requireScope(principal, 'read');
    const reply = await deps.upstream.request({ op: 'listTopics' });
    return c.json({ topics: reply.topics.filter((t) => allowsTopic(principal, t.name)).map(topicToJson) });
  });

  app.post('/v1/topics', async (c) => {
    const body = parseObject(parseJsonBody(c.req.header('content-type'), await readBody(c)), [
      'name',
      'retention',
      'replicationFactor',
    ]);
    if (typeof body['name'] !== 'string') bad('name must be a string');
    const topic = checkName('topic', body['name']);
    requireScope(c.get('principal'), 'admin', topic);
    const retention = body['retention'] === undefined ? undefined : parseRetention(body['retention']);
    const replicationFactor =
      body['replicationFactor'] === undefined ? undefined : parseReplicationFactor(body['replicationFactor']);
    const reply = await deps.upstream.request({
      op: 'createTopic',
      topic,
      ...(retention === undefined ? {} : { retention }),
      ...(replicationFactor === undefined ? {} : { replicationFactor }),
    });
    if (reply.created) c.header('location', `/v1/topics/${topic}`);
    return c.json(topicToJson(reply.topic), reply.created ? 201 : 200);
  });

  app.get('/v1/topics/:topic', async (c) => {
    const topic = topicFor(c, 'read');
    const reply = await deps.upstream.request({ op: 'describeTopic', topic });
    return c.json(topicToJson(reply.topic));
  });

  app.patch('/v1/topics/:topic', async (c) => {
    const topic = topicFor(c, 'admin');
    const body = parseObject(parseJsonBody(c.req.header('content-type'), await readBody(c)), ['retention']);
    if (body['retention'] === undefined) bad('retention is required');
    const reply = await deps.upstream.request({
      op: 'configureTopic',
      topic,
      retention: parseRetention(body['retention']),
    });
    return c.json(topicToJson(reply.topic));
  });

  app.delete('/v1/topics/:topic', async (c) => {
    const topic = topicFor(c, 'admin');
    const reply = await deps.upstream.request({ op: 'deleteTopic', topic });
    if (!reply.deleted) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' does not exist`);
    return c.body(null, 204);
  });
}
