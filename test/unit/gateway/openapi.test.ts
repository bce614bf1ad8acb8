/**
 * openapi.yaml is the single source of truth: it lints clean with Redocly, the generated SDK types
 * are not stale, the spec and the gateway's routes list the same operations, and the spec lists
 * every error code of the shared table.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { listOperations } from '../../../gateway/docs-page.js';
import { ErrorCode } from '../../../node/protocol/error-codes.js';
import { makeGateway, useRealNode } from './helpers.js';
import { repoRoot } from '../../helpers/spec-check.js';

const node = useRealNode(test);

const env = {
  ...process.env,
  REDOCLY_TELEMETRY: 'off',
  REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
  NO_COLOR: '1',
};

test('openapi.yaml lints clean (redocly recommended rules, no warnings)', (t) => {
  const out = execFileSync(
    path.join(repoRoot, 'node_modules/.bin/redocly'),
    ['lint', 'openapi.yaml', '--format', 'summary'],
    {
      cwd: repoRoot,
      env,
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  t.notRegex(out, /warning|error/i);
});

test('sdk/generated/api.ts is what npm run gen:sdk produces from openapi.yaml', (t) => {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-gen-')), 'api.ts');
  execFileSync(
    path.join(repoRoot, 'node_modules/.bin/openapi-typescript'),
    ['openapi.yaml', '-o', out, '--default-non-nullable=false'],
    { cwd: repoRoot, env, stdio: 'ignore' },
  );
  const script = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).scripts[
    'gen:sdk'
  ] as string;
  t.regex(script, /--default-non-nullable=false/, 'the test generates with the same flags as the script');
  t.is(
    fs.readFileSync(path.join(repoRoot, 'sdk/generated/api.ts'), 'utf8'),
    fs.readFileSync(out, 'utf8'),
    'run npm run gen:sdk',
  );
});

test('every operation of the spec has a route, and every route is in the spec', async (t) => {
  const { call } = makeGateway(node());
  const spec = fs.readFileSync(path.join(repoRoot, 'openapi.yaml'), 'utf8');
  const operations = listOperations(spec);
  t.true(operations.length >= 16);
  for (const op of operations) {
    const url = op.path
      .replace('{topic}', 'some-topic')
      .replace('{consumer}', 'some-consumer')
      .replace('{file}', 'init.js');
    const res = await call(url, { method: op.method, headers: { accept: 'application/json' } });
    t.not(res.status, 405, `${op.method} ${op.path} has no handler`);
    if (res.status === 404)
      t.not(((await res.json()) as { code: string }).code, 'NOT_FOUND', `${op.method} ${op.path}`);
  }
  const specSet = new Set(operations.map((op) => `${op.method} ${op.path}`));
  const source = fs
    .readdirSync(path.join(repoRoot, 'gateway/routes'))
    .map((f) => fs.readFileSync(path.join(repoRoot, 'gateway/routes', f), 'utf8'));
  for (const text of source) {
    for (const m of text.matchAll(/app\.(get|post|patch|delete|put)\('([^']+)'/g)) {
      const key = `${m[1]!.toUpperCase()} ${m[2]!.replace(/:(\w+)/g, '{$1}')}`;
      t.true(specSet.has(key), `${key} is served but not in openapi.yaml`);
    }
  }
});

test("the spec's ErrorCode enum lists exactly the codes of node/protocol/error-codes.ts", (t) => {
  const spec = fs.readFileSync(path.join(repoRoot, 'openapi.yaml'), 'utf8');
  const block = /\n {4}ErrorCode:\n[\s\S]*?\n {6}enum:\n((?: {8}- [A-Z_]+\n)+)/.exec(spec);
  if (block === null) return t.fail('no ErrorCode enum in openapi.yaml');
  const listed = block[1]!
    .trim()
    .split('\n')
    .map((line) => line.replace(/^\s*- /, ''));
  t.deepEqual([...listed].sort(), Object.keys(ErrorCode).sort());
});
