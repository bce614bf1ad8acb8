/**
 * Topic routes: create (idempotent; retention and replication factor), list (by name, `prefix`,
 * cursor pages; each listed topic described by its active segment's leader so that its end is
 * exact, not the lower bound the answering node knows), describe (with each segment's replicas and
 * epoch), configure retention, delete.
 */
import { Buffer } from 'node:buffer';
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import {
  type RetentionSettings,
  replicationFactorMax,
  type TopicInfo,
} from '../../node/protocol/messages.js';
import { topicNameProblem } from '../../node/protocol/topic-name.js';
import { allowsTopic, requireScope } from '../middleware/auth.js';
import { readBody } from '../body.js';
import { topicListConcurrencyMax, topicListCountDefault, topicListCountMax } from '../limits.js';
import {
  badParameter,
  checkName,
  checkQuery,
  parseIntParam,
  parseJsonBody,
  queryParamsByOperation,
} from '../params.js';
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

/** The opaque page cursor: the last name of the page, base64url (names sort as plain strings). */
function encodeCursor(name: string): string {
  return Buffer.from(name, 'utf8').toString('base64url');
}

function decodeCursor(raw: string | undefined): string | undefined {
  if (raw === undefined) return undefined;
  const name = /^[A-Za-z0-9_-]{1,400}$/.test(raw) ? Buffer.from(raw, 'base64url').toString('utf8') : '';
  if (topicNameProblem(name) !== undefined)
    throw badParameter('cursor', 'cursor is not one this gateway gave');
  return name;
}

/** Runs `work` over `items` with at most `concurrencyMax` calls at once; results in item order. */
async function mapBounded<T, R>(
  items: readonly T[],
  concurrencyMax: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await work(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrencyMax, items.length) }, worker));
  return out;
}

export function topicRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/topics', async (c) => {
    checkQuery(c.req.url, queryParamsByOperation.listTopics);
    const principal = c.get('principal');
    requireScope(principal, 'read');
    const prefix = c.req.query('prefix') ?? '';
    if (prefix.length > 200) throw badParameter('prefix', 'prefix is longer than a topic name can be');
    const limit = parseIntParam('limit', c.req.query('limit'), 1, topicListCountMax) ?? topicListCountDefault;
    const after = decodeCursor(c.req.query('cursor'));
    const reply = await deps.upstream.request({ op: 'listTopics' });
    const names = reply.topics
      .map((t) => t.name)
      .filter((name) => name.startsWith(prefix) && allowsTopic(principal, name))
      .filter((name) => after === undefined || name > after)
      .sort();
    const page = names.slice(0, limit);
    // The node that answered the list knows the end of the topics whose active segment it leads
    // and only a lower bound of the others: each is described by its own leader, a bounded number
    // at once. A topic deleted meanwhile drops out of the page.
    const described = await mapBounded(page, topicListConcurrencyMax, (topic) =>
      deps.upstream.request({ op: 'describeTopic', topic }).then(
        (r) => r.topic,
        (error: unknown) => {
          if (error instanceof WalrusError && error.code === ErrorCode.TOPIC_NOT_FOUND) return undefined;
          throw error;
        },
      ),
    );
    const topics = described.filter((t): t is TopicInfo => t !== undefined).map(topicToJson);
    const last = page[page.length - 1];
    return c.json({
      topics,
      nextCursor: names.length > page.length && last !== undefined ? encodeCursor(last) : null,
    });
  });

  app.post('/v1/topics', async (c) => {
    checkQuery(c.req.url);
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
    checkQuery(c.req.url);
    const topic = topicFor(c, 'read');
    const reply = await deps.upstream.request({ op: 'describeTopic', topic });
    return c.json(topicToJson(reply.topic));
  });

  app.patch('/v1/topics/:topic', async (c) => {
    checkQuery(c.req.url);
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
    checkQuery(c.req.url);
    const topic = topicFor(c, 'admin');
    const reply = await deps.upstream.request({ op: 'deleteTopic', topic });
    if (!reply.deleted) throw new WalrusError(ErrorCode.TOPIC_NOT_FOUND, `topic '${topic}' does not exist`);
    return c.body(null, 204);
  });
}
