/** The SSE parser without a network: known streams, any chunking, CR/LF variants, bounded lines. */
import test from 'ava';
import fc from 'fast-check';
import { type SseEvent, SseParser } from '../../../sdk/sse-parser.js';

function parseAll(chunks: readonly string[]): SseEvent[] {
  const events: SseEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  for (const chunk of chunks) parser.push(chunk);
  return events;
}

test('fields, comments, multi-line data, ids carried over, retry', (t) => {
  const parser = new SseParser(() => {});
  parser.push('retry: 1500\n\n');
  t.is(parser.retryMs, 1500);
  const events = parseAll([
    ': comment\nid: 7\ndata: a\ndata: b\n\nevent: problem\ndata: {"x":1}\n\ndata\n\nid: -1\n\n',
  ]);
  t.deepEqual(events, [
    { event: 'message', data: 'a\nb', id: '7' },
    { event: 'problem', data: '{"x":1}', id: '7' },
    { event: 'message', data: '', id: '7' },
  ]);
});

test('an id without data sets the last event id without dispatching', (t) => {
  const events: SseEvent[] = [];
  const parser = new SseParser((e) => events.push(e));
  parser.push('retry: 1000\nid: 41\n: tail\n\n');
  t.is(events.length, 0);
  t.is(parser.lastEventId, '41');
});

test('CRLF, CR and LF line endings parse alike, even split between chunks', (t) => {
  const lf = parseAll(['id: 1\ndata: x\n\n']);
  t.deepEqual(parseAll(['id: 1\r\ndata: x\r\n\r\n']), lf);
  t.deepEqual(parseAll(['id: 1\rdata: x\r\r']), lf);
  t.deepEqual(parseAll(['id: 1\r', '\ndata: x\r', '\n\r', '\n']), lf);
});

test('property: any split of a stream gives the same events', (t) => {
  const event = fc.record({
    id: fc.nat(),
    data: fc.string({ unit: fc.constantFrom('a', 'b', '{', '"', ' ', ':', 'é', '😀') }),
  });
  fc.assert(
    fc.property(
      fc.array(event, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 10 }),
      fc.constantFrom('\n', '\r\n', '\r'),
      (evs, cuts, eol) => {
        const text = evs.map((e) => `id: ${e.id}${eol}data: ${e.data}${eol}${eol}`).join('');
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const chunks: string[] = [];
        let last = 0;
        for (const p of points) {
          chunks.push(text.slice(last, p));
          last = p;
        }
        chunks.push(text.slice(last));
        const whole = parseAll([text]);
        t.deepEqual(parseAll(chunks), whole);
        t.deepEqual(
          whole.map((e) => e.data),
          evs.map((e) => e.data),
        );
      },
    ),
  );
});

test('a line longer than the bound is an error, not unbounded growth', (t) => {
  const parser = new SseParser(() => {}, { lineLengthMax: 100 });
  t.throws(() => parser.push(`data: ${'x'.repeat(200)}`), { message: /longer than 100/ });
});
