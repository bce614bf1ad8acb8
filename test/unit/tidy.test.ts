/**
 * Tidy: checks the tree itself (TigerBeetle's tidy.zig idea). Import directions follow the table
 * in STYLE.md; the pure folders use no clock, timers, randomness, filesystem or network, so the
 * simulator can drive them deterministically. Reads the TypeScript sources, not dist.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { ErrorCode } from '../../node/protocol/error-codes.js';

const root = path.resolve(import.meta.dirname, '../../..');

const nodeFolders = [
  'node/raft',
  'node/replication',
  'node/protocol',
  'node/storage-io',
  'node/wal',
  'node/transport',
  'node/metadata',
  'node/topics',
  'node/controller',
  'node/server',
  'node/client',
  'node/metrics',
  'node/admin',
  'node/config',
  'node/bin',
  'node/log',
  'node/scheduler',
  'node/fast-metrics',
];
const everything = [...nodeFolders, 'gateway', 'sdk', 'infra', 'test/helpers', 'test/unit', 'test/sim'];
const blackBox = ['node/client', 'node/protocol', 'node/log', 'gateway', 'sdk', 'infra', 'test/helpers'];

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
  // Prometheus collectors read what the node keeps; the admin port serves them.
  'node/metrics': ['node/metadata', 'node/topics', 'node/storage-io', 'node/protocol'],
  'node/admin': ['node/protocol'],
  'node/config': [
    'node/metrics',
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
    'node/metrics',
    'node/admin',
    'node/config',
  ],
  'node/log': [],
  'node/scheduler': [],
  'node/fast-metrics': [],
  gateway: ['node/protocol', 'node/client', 'node/log', 'node/fast-metrics'],
  sdk: [],
  infra: ['node/client', 'node/protocol', 'node/log'],
  // Real-process suites are black-box: they reach the product only as users do (binaries started
  // by the launcher, the public client, the SDK, the gateway), never its internals.
  'test/cluster': blackBox,
  'test/fault': blackBox,
  'test/conformance': blackBox,
  // The WAL bench measures the engine in-process, the reload bench the node's SIGHUP reload.
  'test/bench': [...blackBox, 'node/wal', 'node/storage-io', 'node/bin', 'node/config'],
  // White-box: in-process tests, the simulator and the helpers may reach anything of ours.
  'test/unit': everything,
  'test/sim': everything,
  'test/helpers': everything,
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
  if (parts[0] === 'node') {
    if (parts.length === 2) return `node/${parts[1]!.replace(/\.[jt]s$/, '')}`;
    return `node/${parts[1]}`;
  }
  if (parts[0] === 'test') return parts.length > 2 ? `test/${parts[1]}` : undefined;
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

/** Leaf files at the top of node/ that every impure folder may use. */
const nodeLeaves = ['node/log', 'node/scheduler', 'node/fast-metrics'];

const sourceFiles = [
  ...new Set(Object.keys(allowedImports).map((f) => (nodeLeaves.includes(f) ? 'node' : f))),
].flatMap((f) => (f === 'node' ? nodeLeaves.map((leaf) => `${leaf}.ts`) : listTs(f)));

test('the tree has source files to check', (t) => {
  t.true(sourceFiles.length > 5, 'tidy found no sources: is it reading the right root?');
});

test('imports point one way (STYLE.md table)', (t) => {
  const violations: string[] = [];
  for (const file of sourceFiles) {
    const from = folderOf(file);
    // This file quotes imports in strings to test the checker.
    if (from === undefined || file === path.join('test', 'unit', 'tidy.test.ts')) continue;
    const allowed = allowedImports[from] ?? [];
    for (const spec of importsOf(fs.readFileSync(path.join(root, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue;
      const target = path.relative(root, path.resolve(path.dirname(path.join(root, file)), spec));
      const to = folderOf(target);
      if (to === undefined || to === from) continue;
      // The one logger and the clock/timers seam are leaves every impure folder may use.
      if (nodeLeaves.includes(to) && !pureFolders.includes(from)) continue;
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

/**
 * Libraries we wrap are imported only by their wrapper, so there is one place to change or mock
 * them: pino behind node/log.ts, CRC behind node/storage-io, the filesystem behind storage-io (and
 * the entry points that make data directories), sockets behind node/transport and node/client,
 * hono and prom-client in the gateway, prom-client in node/metrics and node/fast-metrics.ts (node/metrics also reads the data
 * directory's size and free space, read-only), openapi-fetch in the SDK.
 */
const wrappedLibraries: readonly { pattern: RegExp; allowedIn: readonly string[] }[] = [
  { pattern: /^pino$/, allowedIn: ['node/log'] },
  { pattern: /^@node-rs\/crc32$/, allowedIn: ['node/storage-io'] },
  { pattern: /^(hono|@hono\/.*|hono\/.*)$/, allowedIn: ['gateway'] },
  { pattern: /^prom-client$/, allowedIn: ['gateway', 'node/metrics', 'node/fast-metrics'] },
  { pattern: /^openapi-fetch$/, allowedIn: ['sdk'] },
  {
    pattern: /^(node:)?(fs|fs\/promises)$/,
    allowedIn: ['node/storage-io', 'node/bin', 'node/config', 'node/metrics', 'gateway'],
  },
  { pattern: /^(node:)?net$/, allowedIn: ['node/transport', 'node/client'] },
];
const productFolders = [...nodeFolders, 'gateway', 'sdk'];

test('wrapped libraries are imported only by their wrapper', (t) => {
  const violations: string[] = [];
  for (const file of productFolders.flatMap(listTs)) {
    const from = folderOf(file)!;
    for (const spec of importsOf(fs.readFileSync(path.join(root, file), 'utf8'))) {
      for (const { pattern, allowedIn } of wrappedLibraries) {
        if (pattern.test(spec) && !allowedIn.includes(from))
          violations.push(`${file} imports ${spec} (only ${allowedIn.join(', ')} may)`);
      }
    }
  }
  t.deepEqual(violations, []);
});

/** The string values of every `XErrorCode` const object and string-union type outside the shared table. */
function localErrorCodes(): { file: string; code: string }[] {
  const found: { file: string; code: string }[] = [];
  for (const file of productFolders.flatMap(listTs)) {
    if (file === path.join('node', 'protocol', 'error-codes.ts')) continue;
    const text = code(fs.readFileSync(path.join(root, file), 'utf8'));
    for (const m of text.matchAll(/export const \w*ErrorCode = \{([\s\S]*?)\}/g))
      for (const v of m[1]!.matchAll(/:\s*'([A-Z_]+)'/g)) found.push({ file, code: v[1]! });
    for (const m of text.matchAll(/export type \w*ErrorCode = ((?:\s*\|?\s*'[A-Z_]+')+);/g))
      for (const v of m[1]!.matchAll(/'([A-Z_]+)'/g)) found.push({ file, code: v[1]! });
  }
  return found;
}

test('every module-local error code is an entry of the shared table', (t) => {
  const shared = new Set(Object.values(ErrorCode) as string[]);
  const local = localErrorCodes();
  t.true(
    local.some((c) => c.file.includes('wal-error')),
    'the scan finds the WAL codes',
  );
  t.true(
    local.some((c) => c.file.includes('raft-error')),
    'the scan finds the Raft codes',
  );
  t.true(
    local.some((c) => c.file.includes('raft-disk-storage')),
    'the scan finds a string-union code type',
  );
  t.deepEqual(
    local.filter((c) => !shared.has(c.code)).map((c) => `${c.file}: ${c.code}`),
    [],
  );
});

test('the folder checker sorts files into their folders', (t) => {
  t.is(folderOf(path.join('node', 'log.ts')), 'node/log');
  t.is(folderOf(path.join('node', 'topics', 'reader.ts')), 'node/topics');
  t.is(folderOf(path.join('test', 'cluster', 'x.test.ts')), 'test/cluster');
  t.is(folderOf(path.join('infra', 'local', 'launcher.ts')), 'infra');
});
