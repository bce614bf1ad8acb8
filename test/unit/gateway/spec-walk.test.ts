/**
 * The spec and the gateway agree field by field: each operation's query parameters are the ones
 * the gateway accepts (params.ts), every schema field is documented, every SSE event the spec names
 * is one the gateway sends (and the reverse), and every event of a real tail (records, then the
 * drain's problem) validates against the schema the spec gives its name.
 */
import test from 'ava';
import { queryParamsByOperation } from '../../../gateway/params.js';
import { type SseEvent, SseParser } from '../../../sdk/sse-parser.js';
import { checkSchema, loadSpec } from '../../helpers/spec-check.js';
import { makeGateway, unique, useRealNode } from './helpers.js';

const node = useRealNode(test);

type Json = Record<string, unknown>;

function operations(): { id: string; path: string; op: Json; params: Json[] }[] {
  const spec = loadSpec();
  const out: { id: string; path: string; op: Json; params: Json[] }[] = [];
  for (const [path, item] of Object.entries(spec['paths'] as Record<string, Json>)) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters') continue;
      const refs = [
        ...((item['parameters'] as Json[]) ?? []),
        ...(((op as Json)['parameters'] as Json[]) ?? []),
      ];
      const params = refs.map((p) => {
        const ref = p['$ref'];
        if (typeof ref !== 'string') return p;
        return (spec['components'] as Record<string, Record<string, Json>>)['parameters']![
          ref.split('/').pop()!
        ]!;
      });
      out.push({ id: (op as Json)['operationId'] as string, path, op: op as Json, params });
    }
  }
  return out;
}

test('each operation takes exactly the query parameters the spec lists (access_token everywhere)', (t) => {
  const table = queryParamsByOperation as Record<string, readonly string[]>;
  for (const { id, path, params } of operations()) {
    if (!path.startsWith('/v1/')) continue;
    const query = params.filter((p) => p['in'] === 'query').map((p) => p['name'] as string);
    const accepted = table[id] ?? ['access_token'];
    t.deepEqual(
      [...query].sort(),
      [...accepted].filter((n) => n !== 'access_token' || query.includes(n)).sort(),
      id,
    );
  }
  for (const id of Object.keys(table))
    t.true(
      operations().some((o) => o.id === id),
      `${id} is in the spec`,
    );
});

test('every field of every schema is documented', (t) => {
  const spec = loadSpec();
  const undocumented: string[] = [];
  const walk = (schema: unknown, at: string): void => {
    if (typeof schema !== 'object' || schema === null) return;
    const s = schema as Json;
    for (const [name, prop] of Object.entries((s['properties'] as Record<string, Json> | undefined) ?? {})) {
      const p = prop as Json;
      const target =
        typeof p['$ref'] === 'string'
          ? (spec['components'] as Record<string, Record<string, Json>>)['schemas']![
              (p['$ref'] as string).split('/').pop()!
            ]
          : p;
      if (
        typeof p['description'] !== 'string' &&
        typeof target?.['description'] !== 'string' &&
        !['type', 'title', 'status', 'code', 'detail', 'instance'].includes(name)
      )
        undocumented.push(`${at}.${name}`);
      walk(p, `${at}.${name}`);
    }
    for (const part of (s['allOf'] as unknown[] | undefined) ?? []) walk(part, at);
    if (s['items'] !== undefined) walk(s['items'], `${at}[]`);
  };
  for (const [name, schema] of Object.entries(
    (spec['components'] as Record<string, Json>)['schemas'] as Json,
  )) {
    // Problem's RFC 9457 members are defined by the RFC.
    walk(schema, name);
  }
  t.deepEqual(undocumented, []);
});

function sseEventsOf(path: string): Record<string, Json> {
  const spec = loadSpec();
  const op = (spec['paths'] as Record<string, Record<string, Json>>)[path]!['get']!;
  const content = ((op['responses'] as Record<string, Json>)['200']!['content'] as Record<string, Json>)[
    'text/event-stream'
  ]!;
  return content['x-sse-events'] as Record<string, Json>;
}

test('the SSE events the spec names are the ones the gateway sends', (t) => {
  const text = JSON.stringify(loadSpec());
  const named = new Set([...text.matchAll(/`(\w+)` event/g)].map((m) => m[1]!));
  const listed = new Set([
    ...Object.keys(sseEventsOf('/v1/topics/{topic}/records')),
    ...Object.keys(sseEventsOf('/v1/tail')),
  ]);
  for (const name of named)
    t.true(listed.has(name), `the spec mentions a \`${name}\` event it does not list`);
  t.deepEqual(Object.keys(sseEventsOf('/v1/topics/{topic}/records')).sort(), ['message', 'problem']);
  t.deepEqual(Object.keys(sseEventsOf('/v1/tail')).sort(), ['problem', 'record']);
});

test('every event of a real tail validates against the schema of its name', async (t) => {
  const { json } = makeGateway(node());
  const name = unique('sw');
  await json('POST', '/v1/topics', { name });
  await json('POST', `/v1/topics/${name}/records`, {
    records: [{ value: 'a' }, { value: 'b', headers: { k: 'v' } }],
  });
  const spec = loadSpec();
  for (const [path, url] of [
    ['/v1/topics/{topic}/records', `/v1/topics/${name}/records?offset=0`],
    ['/v1/tail', `/v1/tail?topic=${name}:0`],
  ] as const) {
    const { call, gateway } = makeGateway(node()); // a drained gateway takes no new tails
    const res = await call(url, { headers: { accept: 'text/event-stream' } });
    const events: SseEvent[] = [];
    const parser = new SseParser((e) => events.push(e));
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let drained = false;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.push(decoder.decode(value, { stream: true }));
      if (!drained && events.filter((e) => e.event !== 'problem').length >= 2) {
        drained = true;
        gateway.hub.drain(); // every tail gets its resumable problem event and ends
      }
    }
    const schemas = sseEventsOf(path);
    t.deepEqual([...new Set(events.map((e) => e.event))].sort(), Object.keys(schemas).sort(), path);
    for (const e of events)
      t.deepEqual(checkSchema(spec, schemas[e.event]!, JSON.parse(e.data)), [], `${path} ${e.event}`);
  }
});
