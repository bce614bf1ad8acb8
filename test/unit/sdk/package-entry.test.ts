/**
 * The package entry as users meet it: from a project that has walrus-ts in its node_modules (a link
 * to this repository, as `npm link` or a workspace makes), `import … from 'walrus-ts/sdk'` resolves
 * through the `exports` map, in JavaScript and with types in TypeScript; and `npm pack` ships every
 * file the map points at.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { repoRoot } from '../../helpers/spec-check.js';

const pkg = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  name: string;
  exports: Record<string, string | Record<string, string>>;
};

/** A consumer project whose node_modules/walrus-ts links to this repository. */
function consumerProject(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-consumer-'));
  fs.mkdirSync(path.join(dir, 'node_modules'));
  fs.symlinkSync(repoRoot, path.join(dir, 'node_modules', pkg.name), 'dir');
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module' }));
  return dir;
}

test("import from 'walrus-ts/sdk' (and the root) resolves through the exports map", (t) => {
  const dir = consumerProject();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'consumer.mjs'),
    `import { createWalrusClient, ErrorCode, Producer, WalrusApiError } from 'walrus-ts/sdk';
import * as root from 'walrus-ts';
const client = createWalrusClient({ baseUrl: 'http://127.0.0.1:1' });
console.log(JSON.stringify({
  client: typeof client.producer,
  code: ErrorCode.TOPIC_NOT_FOUND,
  producer: typeof Producer,
  error: new WalrusApiError('BUSY', 429, 'x').retryable,
  sameAsRoot: root.createWalrusClient === createWalrusClient,
  resolved: import.meta.resolve('walrus-ts/sdk'),
}));
`,
  );
  const out = JSON.parse(execFileSync(process.execPath, ['consumer.mjs'], { cwd: dir, encoding: 'utf8' }));
  t.like(out, {
    client: 'function',
    code: 'TOPIC_NOT_FOUND',
    producer: 'function',
    error: true,
    sameAsRoot: true,
  });
  t.regex(out.resolved, /\/dist\/sdk\/index\.js$/);

  // A deep path that the map does not export is refused, so users cannot come to depend on it.
  fs.writeFileSync(path.join(dir, 'deep.mjs'), `await import('walrus-ts/dist/sdk/client.js');`);
  const deep = t.throws(() =>
    execFileSync(process.execPath, ['deep.mjs'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' }),
  );
  t.regex(String((deep as { stderr?: unknown } | undefined)?.stderr), /ERR_PACKAGE_PATH_NOT_EXPORTED/);
});

test("TypeScript resolves 'walrus-ts/sdk' with its types (nodenext, DOM types only)", (t) => {
  const dir = consumerProject();
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'consumer.ts'),
    `import { createWalrusClient, type ErrorCode, type WalrusRecord } from 'walrus-ts/sdk';
const client = createWalrusClient({ baseUrl: 'http://127.0.0.1:1' });
export async function first(): Promise<Uint8Array | undefined> {
  const page = await client.read('t', { offset: 0, values: 'bytes' });
  const bytes: Uint8Array | undefined = page.records[0]?.value;
  return bytes;
}
export const text: (r: WalrusRecord) => string = (r) => r.value;
export const code: ErrorCode = 'NOT_LEADER';
// @ts-expect-error: codes are typed, a made-up one does not compile
export const wrong: ErrorCode = 'NOT_A_CODE';
`,
  );
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        module: 'nodenext',
        moduleResolution: 'nodenext',
        target: 'es2022',
        lib: ['es2022', 'dom', 'dom.iterable'],
        types: [],
        strict: true,
        noEmit: true,
        skipLibCheck: false,
      },
      files: ['consumer.ts'],
    }),
  );
  const tsc = path.join(repoRoot, 'node_modules/typescript/bin/tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json'], {
      cwd: dir,
      encoding: 'utf8',
      stdio: 'pipe',
    });
    t.pass();
  } catch (error) {
    t.fail(String((error as { stdout?: unknown }).stdout));
  }
});

test('npm pack ships every file the exports map points at', (t) => {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: repoRoot,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  const files = new Set((JSON.parse(out) as [{ files: { path: string }[] }])[0].files.map((f) => f.path));
  const targets = Object.values(pkg.exports).flatMap((v) => (typeof v === 'string' ? [v] : Object.values(v)));
  t.true(targets.includes('./dist/sdk/index.d.ts'));
  for (const target of targets) t.true(files.has(target.replace(/^\.\//, '')), `${target} is packed`);
});
