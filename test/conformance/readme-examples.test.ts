/**
 * The README's HTTP examples run as written: every curl line of its HTTP section (the URL pointed
 * at this test's gateway instead of :3000), and the SDK examples of README.md and sdk/README.md as
 * real Node programs against a real node and gateway.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import test from 'ava';
import { repoRoot, useGatewayOverOneNode } from '../helpers/gateway-process.js';

const run = promisify(execFile);
const running = useGatewayOverOneNode(test);

/** The README between `<!-- name:start -->` and `<!-- name:end -->`. */
function readmeSection(name: string): string {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const start = readme.indexOf(`<!-- ${name}:start -->`);
  const end = readme.indexOf(`<!-- ${name}:end -->`);
  if (start < 0 || end < start) throw new Error(`README.md has no ${name} section markers`);
  return readme.slice(start, end);
}

const httpSection = () => readmeSection('http');

function codeBlocks(markdown: string, lang: string): string[] {
  return [...markdown.matchAll(new RegExp('```' + lang + '\\n([\\s\\S]*?)```', 'g'))].map((m) => m[1]!);
}

/** Commands of a bash block: comments dropped, backslash continuations joined. */
function commands(block: string): string[] {
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

const retarget = (text: string) => text.replaceAll('http://localhost:3000', running.gateway.url);

test('every curl example of the README works against a running gateway', async (t) => {
  const lines = codeBlocks(httpSection(), 'bash').flatMap(commands);
  t.true(lines.length >= 10, 'the README shows the core routes');
  for (const line of lines) {
    t.regex(line, /^curl /);
    const sse = line.includes('text/event-stream');
    // The SSE example never ends by itself: give it two seconds, then expect the events it printed.
    const command = sse ? `timeout 2 ${retarget(line)}; test $? -eq 124` : retarget(line);
    const { stdout } = await run('bash', ['-c', command], { maxBuffer: 8 * 1024 * 1024 });
    t.notRegex(stdout, /"type":"https:\/\/walrus-ts\.dev\/problems\//, `${line}\n${stdout}`);
    t.true(stdout.length > 0, line);
    if (sse) {
      t.regex(stdout, /^retry: 1000\nid: -1\n/);
      t.regex(stdout, /id: 0\ndata: \{"offset":0,[^\n]*"value":"hello"\}/);
      t.regex(stdout, /id: 2\ndata: [^\n]*"value":"a raw line"/);
    }
  }
  const read = JSON.parse(
    (await run('curl', ['-s', `${running.gateway.url}/v1/topics/logs/records?offset=0&limit=10`])).stdout,
  );
  t.deepEqual(
    (read as { records: { value: string }[] }).records.map((r) => r.value),
    ['hello', 'world', 'a raw line', 'exactly once'],
  );
});

test('the Durable Streams curl examples of the README work against a running gateway', async (t) => {
  const lines = codeBlocks(readmeSection('ds'), 'bash').flatMap(commands);
  t.is(lines.length, 4);
  const outputs: string[] = [];
  for (const line of lines) {
    // The SSE example never ends by itself: give it two seconds, then expect the events it printed.
    const sse = line.includes('live=sse');
    const command = sse ? `timeout 2 ${retarget(line)}; test $? -eq 124` : retarget(line);
    outputs.push((await run('bash', ['-c', command])).stdout);
  }
  t.regex(outputs[0]!, /^HTTP\/1\.1 201 /);
  t.regex(outputs[1]!, /^HTTP\/1\.1 204 /);
  t.is(outputs[2], 'hello');
  t.regex(outputs[3]!, /event: data\ndata:hello\n\nevent: control\ndata:\{"streamNextOffset"/);
});

async function runExample(t: import('ava').ExecutionContext, source: string): Promise<string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-example-'));
  const file = path.join(dir, 'example.mjs');
  const code = retarget(source).replaceAll(
    "'./dist/",
    `'${pathToFileURL(path.join(repoRoot, 'dist')).href}/`,
  );
  fs.writeFileSync(file, code);
  // As in a project that depends on walrus-ts: `import … from 'walrus-ts/sdk'` resolves.
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(repoRoot, path.join(dir, 'node_modules', 'walrus-ts'), 'dir');
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { stdout } = await run(process.execPath, [file], { timeout: 30_000 });
  return stdout;
}

test('the SDK example of the README runs as written', async (t) => {
  const [example] = codeBlocks(httpSection(), 'js');
  t.truthy(example);
  const out = await runExample(t, example!);
  t.regex(out, /appended at offset \d+/);
  t.regex(out, /\[ 'order 1', 'order 2' \]/);
  t.regex(out, /tail \d+ order 1\ntail \d+ order 2/);
  t.regex(out, /^produced 2$/m);
});

test('the example of sdk/README.md runs as written', async (t) => {
  const [example] = codeBlocks(fs.readFileSync(path.join(repoRoot, 'sdk/README.md'), 'utf8'), 'js');
  t.truthy(example);
  const out = await runExample(t, example!);
  t.regex(out, /^true true$/m);
  t.regex(out, /records; next offset \d+/);
  t.regex(out, /tail \d+ pay 1/);
  t.regex(out, /binary record at offset \d+/);
});
