/**
 * Tidy: checks the tree itself (TigerBeetle's tidy.zig idea). Import directions follow the table
 * in STYLE.md; the pure folders use no clock, timers, randomness, filesystem or network, so the
 * simulator can drive them deterministically. Reads the TypeScript sources, not dist.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';

const root = path.resolve(import.meta.dirname, '../../..');

/** Folder → the folders of ours it may import (besides itself). */
const allowedImports: Record<string, readonly string[]> = {
  'node/raft': [],
  'node/replication': [],
  'node/protocol': [],
  'node/storage-io': [],
  'node/wal': ['node/storage-io'],
  'node/transport': ['node/protocol'],
  'node/metadata': ['node/raft', 'node/protocol', 'node/storage-io'],
  'node/topics': ['node/wal', 'node/replication', 'node/metadata', 'node/protocol'],
  'node/controller': ['node/metadata', 'node/replication', 'node/protocol'],
  'node/server': ['node/topics', 'node/controller', 'node/metadata', 'node/protocol', 'node/transport'],
  'node/client': ['node/protocol', 'node/transport'],
  'node/config': [
    'node/raft',
    'node/wal',
    'node/storage-io',
    'node/protocol',
    'node/transport',
    'node/metadata',
    'node/client',
  ],
  'node/bin': [
    'node/raft',
    'node/replication',
    'node/storage-io',
    'node/wal',
    'node/protocol',
    'node/transport',
    'node/metadata',
    'node/topics',
    'node/controller',
    'node/server',
    'node/client',
    'node/config',
  ],
  gateway: ['node/protocol', 'node/client'],
  sdk: [],
};

const pureFolders = ['node/raft', 'node/replication', 'node/protocol'];

const bannedInPure: readonly { pattern: RegExp; what: string }[] = [
  { pattern: /\bset(Timeout|Interval|Immediate)\s*\(/, what: 'timers' },
  { pattern: /\bDate\b/, what: 'Date' },
  { pattern: /\bMath\.random\b/, what: 'Math.random' },
  { pattern: /\bperformance\.now\b/, what: 'performance.now' },
  {
    pattern: /from\s+['"](node:)?(fs|fs\/promises|net|dgram|child_process|http|https|timers)['"]/,
    what: 'I/O modules',
  },
  { pattern: /\bprocess\.(env|hrtime|nextTick)\b/, what: 'process' },
];

function listTs(dir: string): string[] {
  const abs = path.join(root, dir);
  if (!fs.existsSync(abs)) return [];
  const out: string[] = [];
  for (const entry of fs.readdirSync(abs, { withFileTypes: true })) {
    const rel = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules') out.push(...listTs(rel));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts')) {
      out.push(rel);
    }
  }
  return out;
}

function folderOf(file: string): string | undefined {
  const parts = file.split(path.sep);
  if (parts[0] === 'node') return parts.length > 2 ? `node/${parts[1]}` : undefined;
  return parts[0];
}

function importsOf(source: string): string[] {
  const specs: string[] = [];
  const re =
    /(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\s*\(\s*['"]([^'"]+)['"]\s*\)|import\s+['"]([^'"]+)['"]/g;
  for (const m of source.matchAll(re)) specs.push((m[1] ?? m[2] ?? m[3])!);
  return specs;
}

/** Strips comments so that words in prose (e.g. "no Date here") do not count. */
function code(source: string): string {
  return source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
}

const sourceFiles = Object.keys(allowedImports).flatMap(listTs);

test('the tree has source files to check', (t) => {
  t.true(sourceFiles.length > 5, 'tidy found no sources: is it reading the right root?');
});

test('imports point one way (STYLE.md table)', (t) => {
  const violations: string[] = [];
  for (const file of sourceFiles) {
    const from = folderOf(file);
    if (from === undefined) continue;
    const allowed = allowedImports[from] ?? [];
    for (const spec of importsOf(fs.readFileSync(path.join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = path.relative(root, path.resolve(path.dirname(path.join(root, file)), spec));
      const to = folderOf(target);
      if (to === undefined || to === from) continue;
      if (!allowed.includes(to)) violations.push(`${file} imports ${spec} (${from} → ${to})`);
    }
  }
  t.deepEqual(violations, []);
});

test('pure folders use no clock, timers, randomness, fs or network', (t) => {
  const violations: string[] = [];
  for (const folder of pureFolders) {
    for (const file of listTs(folder)) {
      const text = code(fs.readFileSync(path.join(root, file), 'utf8'));
      for (const { pattern, what } of bannedInPure) {
        if (pattern.test(text)) violations.push(`${file} uses ${what}`);
      }
    }
  }
  t.deepEqual(violations, []);
});

test('the import checker itself catches a violation', (t) => {
  const specs = importsOf("import { x } from '../wal/index.js';\nimport type { Y } from './y.js';");
  t.deepEqual(specs, ['../wal/index.js', './y.js']);
  const banned = bannedInPure.filter(({ pattern }) => pattern.test(code('const t = Date.now(); // Date')));
  t.is(banned.length, 1);
});
