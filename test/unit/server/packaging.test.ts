/**
 * Issue 12, item 8: what `npm install` and the built package promise about the entry points. The
 * lock file lists every bin of package.json (else a fresh `npm install` rewrites it), and the
 * built bin files are executable (the postbuild step), so `./dist/node/bin/walrus-node.js` and an
 * installed `walrus-node` run without `node` in front.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { repoRoot } from '../../../infra/local/launcher.js';

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  bin: Record<string, string>;
};
const lock = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, { bin?: Record<string, string> }>;
};

test('package-lock.json lists every bin of package.json', (t) => {
  t.deepEqual(lock.packages['']?.bin, pkg.bin);
  t.truthy(pkg.bin['walrus-gateway']);
});

test('the built bin files are executable and start with a node shebang', (t) => {
  for (const [name, file] of Object.entries(pkg.bin)) {
    const full = path.join(repoRoot, file);
    const mode = fs.statSync(full).mode;
    t.is(mode & 0o111, 0o111, `${name} (${file}) is executable`);
    t.true(fs.readFileSync(full, 'utf8').startsWith('#!/usr/bin/env node\n'), `${name} has a shebang`);
  }
});
