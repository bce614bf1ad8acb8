/**
 * The multi-topic SSE tail: `GET /v1/tail?topic=a&topic=b:42`. One connection follows up to
 * tailTopicCountMax topics through the same hub as single-topic tails (one subscriber per topic on
 * one sink, so the same bounds, shared upstream readers, slow-client cut-off and heartbeats
 * apply). Each record is an `event: record` naming its topic; `id:` holds every topic's next
 * offset, so `Last-Event-ID` resumes them all (multi-tail.ts). A topic starts at its `:offset`,
 * else where the Last-Event-ID puts it, else at its current end.
 */
import type { Hono } from 'hono';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';
import { requireScope } from '../middleware/auth.js';
import { tailTopicCountMax } from '../limits.js';
import { badParameter, checkQuery, queryParamsByOperation } from '../params.js';
import { MultiTailFormat, parseMultiTailId, parseTopicPosition } from '../sse/multi-tail.js';
import type { GatewayContext, GatewayEnv, RouteDeps } from './deps.js';
import { openSse, resolveStart, sseAnswer } from './records.js';

export function tailRoutes(app: Hono<GatewayEnv>, deps: RouteDeps): void {
  app.get('/v1/tail', async (c) => {
    checkQuery(c.req.url, queryParamsByOperation.tailTopics);
    const accept = c.req.header('accept');
    if (accept !== undefined && accept !== '*/*' && !/text\/event-stream/i.test(accept))
      throw new WalrusError(ErrorCode.NOT_ACCEPTABLE, 'this is an SSE stream: ask for text/event-stream');
    return sseAnswer(c, deps, () => startMultiTail(c, deps));
  });
}

async function startMultiTail(c: GatewayContext, deps: RouteDeps): Promise<Response> {
  const given = c.req.queries('topic') ?? [];
  if (given.length === 0) throw badParameter('topic', 'name at least one topic: ?topic=a&topic=b');
  if (given.length > tailTopicCountMax)
    throw badParameter('topic', `at most ${tailTopicCountMax} topics in one tail`);
  const wanted = new Map<string, number | undefined>();
  for (const raw of given) {
    const { topic, offset } = parseTopicPosition(raw, 'topic');
    if (wanted.has(topic)) throw badParameter('topic', `topic '${topic}' is named twice`);
    requireScope(c.get('principal'), 'read', topic);
    wanted.set(topic, offset);
  }
  const lastEventId = c.req.header('last-event-id')?.trim();
  const resumed = lastEventId === undefined || lastEventId === '' ? undefined : parseMultiTailId(lastEventId);
  const starts = new Map<string, number>();
  await Promise.all(
    [...wanted].map(async ([topic, offset]) => {
      const from = resumed?.get(topic) ?? offset;
      const q = { offset: from, timestamp: undefined, tailOffset: undefined, clamp: false };
      starts.set(topic, await resolveStart(deps, topic, q, 'end', true));
    }),
  );
  const ordered = new Map([...wanted.keys()].map((topic) => [topic, starts.get(topic)!]));
  const topics = [...ordered.keys()];
  deps.hub.admitAll(topics);
  const format = new MultiTailFormat(ordered);
  const preamble = `retry: 1000\nid: ${format.id()}\n: tail of ${topics.join(', ')}\n\n`;
  return openSse(c, deps, preamble, (sink) => {
    for (const [topic, offset] of ordered) deps.hub.subscribe(topic, offset, sink, format);
  });
}
