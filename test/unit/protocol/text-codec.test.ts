/**
 * The Walrus text protocol codec: every command of the seeds, case-insensitive keywords, PUT
 * payloads with spaces and arbitrary text, and typed errors for everything else.
 */
import test from 'ava';
import fc from 'fast-check';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { protocolLimits } from '../../../node/protocol/limits.js';
import { encodeTextReply, parseTextCommand, parseTextReply } from '../../../node/protocol/text-codec.js';
import { topicArb } from './arbitraries.js';

const parse = (s: string | Buffer) => parseTextCommand(typeof s === 'string' ? Buffer.from(s, 'utf8') : s);

test('the seed commands parse', (t) => {
  t.deepEqual(parse('REGISTER logs'), { ok: true, command: { kind: 'REGISTER', topic: 'logs' } });
  t.deepEqual(parse('GET logs'), { ok: true, command: { kind: 'GET', topic: 'logs' } });
  t.deepEqual(parse('STATE logs'), { ok: true, command: { kind: 'STATE', topic: 'logs' } });
  t.deepEqual(parse('METRICS'), { ok: true, command: { kind: 'METRICS' } });
  const put = parse('PUT logs hello from distributed cluster');
  t.true(
    put.ok && put.command.kind === 'PUT' && put.command.value.toString() === 'hello from distributed cluster',
  );
});

test('keywords are case-insensitive and trailing newlines are ignored except in PUT payloads', (t) => {
  t.deepEqual(parse('metrics'), { ok: true, command: { kind: 'METRICS' } });
  t.deepEqual(parse('Metrics\n'), { ok: true, command: { kind: 'METRICS' } });
  t.deepEqual(parse('get logs\r\n'), { ok: true, command: { kind: 'GET', topic: 'logs' } });
  const put = parse('put logs line\n');
  t.true(put.ok && put.command.kind === 'PUT' && put.command.value.toString() === 'line\n');
});

test('PUT payload edge cases: empty payload allowed, missing payload is BAD_REQUEST', (t) => {
  const empty = parse('PUT logs ');
  t.true(empty.ok && empty.command.kind === 'PUT' && empty.command.value.length === 0);
  const spaces = parse('PUT logs   a  b ');
  t.true(spaces.ok && spaces.command.kind === 'PUT' && spaces.command.value.toString() === '  a  b ');
  const missing = parse('PUT logs');
  t.false(missing.ok);
  t.is(!missing.ok && missing.error.code, ErrorCode.BAD_REQUEST);
  t.is(!parse('PUT').ok && (parse('PUT') as { error: { code: string } }).error.code, ErrorCode.BAD_REQUEST);
});

test('errors are typed', (t) => {
  const code = (s: string | Buffer) => {
    const r = parse(s);
    return r.ok ? 'ok' : r.error.code;
  };
  t.is(code('FETCH logs'), ErrorCode.UNKNOWN_COMMAND);
  t.is(code(''), ErrorCode.BAD_REQUEST);
  t.is(code('GET'), ErrorCode.BAD_REQUEST);
  t.is(code('GET a b'), ErrorCode.BAD_REQUEST);
  t.is(code('METRICS now'), ErrorCode.BAD_REQUEST);
  t.is(code('GET ../etc'), ErrorCode.INVALID_TOPIC_NAME);
  t.is(code('REGISTER ..'), ErrorCode.INVALID_TOPIC_NAME);
  t.is(code(`STATE ${'a'.repeat(201)}`), ErrorCode.INVALID_TOPIC_NAME);
  t.is(code('PUT a/b x'), ErrorCode.INVALID_TOPIC_NAME);
  t.is(code(Buffer.from([0x50, 0x55, 0x54, 0x20, 0x61, 0x20, 0xff])), ErrorCode.BAD_REQUEST);
  t.is(code(Buffer.from([0xb1, 1, 2, 3])), ErrorCode.BAD_REQUEST, 'the binary marker is never valid text');
  t.is(code(Buffer.alloc(protocolLimits.textCommandSizeMaxBytes + 1, 0x41)), ErrorCode.FRAME_TOO_LARGE);
});

test('PUT round-trips any UTF-8 payload', (t) => {
  fc.assert(
    fc.property(topicArb, fc.string({ unit: 'grapheme', maxLength: 200 }), (topic, payload) => {
      const r = parse(`pUt ${topic} ${payload}`);
      return (
        r.ok &&
        r.command.kind === 'PUT' &&
        r.command.topic === topic &&
        r.command.value.toString() === payload
      );
    }),
  );
  t.pass();
});

test('garbage never throws', (t) => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      const r = parseTextCommand(bytes);
      return r.ok || typeof r.error.code === 'string';
    }),
  );
  fc.assert(
    fc.property(fc.string({ maxLength: 100 }), (s) => {
      const r = parse(s);
      return r.ok || typeof r.error.code === 'string';
    }),
  );
  t.pass();
});

test('replies encode as in the seeds and parse back', (t) => {
  t.is(encodeTextReply({ kind: 'OK' }).toString(), 'OK');
  t.is(encodeTextReply({ kind: 'OK', payload: 'hello world' }).toString(), 'OK hello world');
  t.is(encodeTextReply({ kind: 'EMPTY' }).toString(), 'EMPTY');
  t.is(
    encodeTextReply({
      kind: 'ERR',
      code: ErrorCode.TOPIC_NOT_FOUND,
      message: "topic 'x'\ndoes not exist",
    }).toString(),
    "ERR TOPIC_NOT_FOUND topic 'x' does not exist",
  );
  t.deepEqual(parseTextReply(Buffer.from('ERR TOPIC_NOT_FOUND nope')), {
    kind: 'ERR',
    code: ErrorCode.TOPIC_NOT_FOUND,
    message: 'nope',
  });
  t.deepEqual(parseTextReply(Buffer.from('ERR NotLeaderError')), {
    kind: 'ERR',
    code: undefined,
    message: 'NotLeaderError',
  });
  t.deepEqual(parseTextReply(Buffer.from('EMPTY')), { kind: 'EMPTY' });
  t.deepEqual(parseTextReply(Buffer.from('OK')), { kind: 'OK', payload: undefined });
  // STATE and METRICS answer the JSON object alone, as Walrus does.
  t.is(encodeTextReply({ kind: 'JSON', json: '{"id":1}' }).toString(), '{"id":1}');
  t.throws(() => encodeTextReply({ kind: 'JSON', json: '[1]' }));
  t.deepEqual(parseTextReply(Buffer.from('{"id":1}')), { kind: 'JSON', payload: Buffer.from('{"id":1}') });
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), (bytes) => {
      const r = parseTextReply(encodeTextReply({ kind: 'OK', payload: bytes }));
      return r.kind === 'OK' && r.payload !== undefined && Buffer.from(bytes).equals(r.payload);
    }),
  );
});
