/**
 * The access log's setting and sampling, in-process (`app.request()`): off registers nothing, on
 * logs every request with its id, a fraction keeps that share of requests and every 5xx. The
 * routes used here never reach the cluster. Lines from real processes: test/conformance/log-shape.
 */
import test from 'ava';
import { createApp } from '../../../gateway/app.js';
import { type AccessLogLine, parseAccessLogSetting } from '../../../gateway/middleware/access-log.js';
import type { Upstream } from '../../../gateway/upstream.js';

const unreachable: Upstream = {
  request: () => Promise.reject(new Error('these routes do not reach the cluster')),
};

function appWith(sampleRate: number) {
  const lines: AccessLogLine[] = [];
  const { app } = createApp({
    upstream: unreachable,
    specText: 'openapi: 3.1.0\n',
    accessLog: { sampleRate, write: (line) => lines.push(line) },
  });
  return { app, lines };
}

test('the setting: off, on, or a fraction; anything else is refused by name', (t) => {
  t.is(parseAccessLogSetting(undefined), 0);
  t.is(parseAccessLogSetting('off'), 0);
  t.is(parseAccessLogSetting('on'), 1);
  t.is(parseAccessLogSetting('all'), 1);
  t.is(parseAccessLogSetting('0.25'), 0.25);
  t.throws(() => parseAccessLogSetting('sometimes'), {
    message: /--access-log must be off, on or a fraction/,
  });
  t.throws(() => parseAccessLogSetting('2'));
});

test('off: no line and no request id header', async (t) => {
  const { app, lines } = appWith(0);
  const res = await app.request('/v1/health');
  t.is(res.status, 200);
  t.is(res.headers.get('x-request-id'), null);
  t.deepEqual(lines, []);
});

test("on: one line per request, with the client's request id or a new one", async (t) => {
  const { app, lines } = appWith(1);
  const given = await app.request('/v1/health', { headers: { 'x-request-id': 'abc-123' } });
  t.is(given.headers.get('x-request-id'), 'abc-123');
  const missing = await app.request('/no/such/route', { headers: { 'x-request-id': 'x'.repeat(500) } });
  t.is(missing.status, 404);
  t.regex(missing.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/, 'an oversized id is replaced');
  t.is(lines.length, 2);
  t.like(lines[0], { method: 'GET', path: '/v1/health', status: 200, requestId: 'abc-123' });
  t.like(lines[1], { method: 'GET', path: '/no/such/route', status: 404 });
  for (const line of lines) t.true(line.durationMs >= 0);
});

test('sampled: about the given share of requests is logged', async (t) => {
  const { app, lines } = appWith(0.2);
  for (let i = 0; i < 500; i++) await app.request('/v1/health');
  t.true(lines.length > 40 && lines.length < 160, `${lines.length} of 500 logged at 0.2`);
});
