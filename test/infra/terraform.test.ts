/**
 * The Terraform module, its example and its systemd units, checked without a cloud or a terraform
 * binary: every .tf parses; every variable is typed, described, validated and used; every
 * reference (in outputs and everywhere else) names something declared; the example passes only
 * variables the module has and every one it needs; the cloud-init template uses exactly the
 * variables the module passes it; the units pass `systemd-analyze verify`.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { parse as parseYaml } from 'yaml';
import {
  declares,
  expressions,
  readModule,
  references,
  renderTemplate,
  type TfModule,
  templatefileCalls,
  templateNames,
} from './terraform-files.js';
import { addOsProgramStandIns } from './vm-lab.js';

const repo = path.resolve(import.meta.dirname, '../../..');
const moduleDir = path.join(repo, 'infra/terraform');
const exampleDir = path.join(moduleDir, 'examples/three-nodes');
const unitDir = path.join(repo, 'infra/systemd');
const units = ['walrus-node.service', 'walrus-gateway.service'];

function providers(module: TfModule): string[] {
  const names = new Set<string>(['google']);
  for (const block of module.terraform)
    for (const rp of (block['required_providers'] ?? []) as Record<string, unknown>[])
      for (const name of Object.keys(rp)) names.add(name);
  return [...names];
}

function allExpressions(module: TfModule): string[] {
  return [
    ...expressions(module.variables),
    ...expressions(module.outputs),
    ...expressions(module.locals),
    ...expressions(module.resources),
    ...expressions(module.data),
    ...expressions(module.modules),
  ];
}

function checkVariables(t: import('ava').ExecutionContext, module: TfModule): void {
  const used = new Set(
    references(allExpressions(module), providers(module))
      .filter((r) => r.kind === 'var')
      .map((r) => r.name),
  );
  t.true(Object.keys(module.variables).length > 0);
  for (const [name, [body]] of Object.entries(module.variables)) {
    t.truthy(body?.['type'], `variable ${name} has a type`);
    t.true(
      typeof body?.['description'] === 'string' && (body['description'] as string).length >= 10,
      `variable ${name} is described`,
    );
    t.true(Array.isArray(body?.['validation']), `variable ${name} is validated`);
    // A validation refers to its own variable (Terraform < 1.9 allows nothing else).
    for (const v of (body?.['validation'] ?? []) as Record<string, unknown>[])
      t.true(String(v['condition']).includes(`var.${name}`), `variable ${name}'s validation checks it`);
    const usedOutsideValidation = new Set(
      references(
        allExpressions({
          ...module,
          variables: Object.fromEntries(Object.entries(module.variables).filter(([n]) => n !== name)),
        }),
        providers(module),
      )
        .filter((r) => r.kind === 'var')
        .map((r) => r.name),
    );
    t.true(used.has(name) && usedOutsideValidation.has(name), `variable ${name} is used`);
  }
}

function checkReferences(t: import('ava').ExecutionContext, module: TfModule): void {
  for (const ref of references(allExpressions(module), providers(module)))
    t.true(declares(module, ref), `${ref.kind} ${ref.name} is declared (${path.relative(repo, module.dir)})`);
  for (const [name, [body]] of Object.entries(module.outputs)) {
    t.true(typeof body?.['description'] === 'string', `output ${name} is described`);
    const refs = references(expressions(body?.['value']), providers(module));
    t.true(refs.length > 0, `output ${name} refers to something`);
  }
  for (const name of Object.keys(module.locals)) {
    const used = references(allExpressions(module), providers(module)).some(
      (r) => r.kind === 'local' && r.name === name,
    );
    t.true(used, `local ${name} is used`);
  }
}

test('every .tf of the module and the example parses', async (t) => {
  const module = await readModule(moduleDir);
  const example = await readModule(exampleDir);
  t.true(module.files.length >= 5);
  t.deepEqual(example.files, ['main.tf']);
  t.true('google_compute_instance' in module.resources);
  t.true('walrus' in example.modules);
});

test('a .tf with a syntax error is refused by the parser the checks rely on', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-tf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'bad.tf'), 'variable "x" { type = string\n');
  await t.throwsAsync(readModule(dir), { message: /bad\.tf/ });
});

test('module: every variable is typed, described, validated and used', async (t) => {
  checkVariables(t, await readModule(moduleDir));
});

test('module: every reference names something declared, every output and local is used', async (t) => {
  checkReferences(t, await readModule(moduleDir));
});

test('the reference checks catch an undeclared variable and an unused one', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-tf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(
    path.join(dir, 'main.tf'),
    'variable "unused" {\n  type = string\n}\noutput "o" {\n  value = var.missing\n}\n',
  );
  const module = await readModule(dir);
  const refs = references(allExpressions(module), ['google']);
  t.deepEqual(refs, [{ kind: 'var', name: 'missing' }]);
  t.false(declares(module, refs[0]!));
});

test('example: its variables and references check out; it passes the module only what the module declares, and all it requires', async (t) => {
  const module = await readModule(moduleDir);
  const example = await readModule(exampleDir);
  checkVariables(t, example);
  checkReferences(t, example);
  const [call] = example.modules['walrus']!;
  t.is(path.resolve(exampleDir, String(call?.['source'])), moduleDir);
  const passed = Object.keys(call ?? {}).filter((k) => k !== 'source');
  for (const name of passed) t.true(name in module.variables, `the module has variable ${name}`);
  for (const [name, [body]] of Object.entries(module.variables))
    if (!('default' in (body ?? {}))) t.true(passed.includes(name), `the example sets required ${name}`);
  for (const ref of references(allExpressions(example), ['google']).filter((r) => r.kind === 'module'))
    t.is(ref.name, 'walrus');
  for (const [name, [body]] of Object.entries(example.outputs)) {
    const m = /module\.walrus\.([a-z_]+)/.exec(String(body?.['value']));
    t.truthy(m, `output ${name} comes from the module`);
    t.true(m![1]! in module.outputs, `the module has output ${m![1]}`);
  }
});

test('the cloud-init template uses exactly the variables the module passes it, and renders to cloud-config YAML', async (t) => {
  const module = await readModule(moduleDir);
  const calls = templatefileCalls(module);
  t.is(calls.length, 1);
  const { template, keys } = calls[0]!;
  t.is(path.relative(repo, template), 'infra/cloud-init/cloud-init.yaml.tftpl');
  const text = fs.readFileSync(template, 'utf8');
  t.deepEqual([...templateNames(text)].sort(), [...keys].sort());
  const rendered = renderTemplate(text, Object.fromEntries(keys.map((k) => [k, `value-of-${k}`])));
  t.true(rendered.startsWith('#cloud-config\n'));
  const doc = parseYaml(rendered) as {
    write_files: { path: string }[];
    runcmd: unknown[];
    mounts: string[][];
  };
  t.deepEqual(
    doc.write_files.map((f) => f.path),
    [
      '/etc/walrus/boot.env',
      '/etc/walrus/node-extra.env',
      '/usr/local/sbin/walrus-boot',
      '/etc/systemd/system/walrus-node.service',
      '/etc/systemd/system/walrus-gateway.service',
    ],
  );
  t.deepEqual(doc.runcmd, [['/usr/local/sbin/walrus-boot']]);
  t.deepEqual(doc.mounts[0]?.slice(0, 2), ['value-of-data_device', 'value-of-data_dir']);
  // Every file the module reads into the template exists.
  for (const m of fs
    .readFileSync(path.join(moduleDir, 'nodes.tf'), 'utf8')
    .matchAll(/filebase64\("\$\{path\.module\}\/([^"]+)"\)/g))
    t.true(fs.existsSync(path.join(moduleDir, m[1]!)), `${m[1]} exists`);
});

test('the template renderer keeps to what templatefile() does, and refuses what it does not render', (t) => {
  // Terraform template text, not JavaScript template strings.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform template syntax
  const text = 'a ${x} $${y} %%{z} ${ n }';
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform template syntax
  t.is(renderTemplate(text, { x: 'X', n: 3 }), 'a X ${y} %{z} 3');
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform template syntax
  t.throws(() => renderTemplate('${missing}', {}), { message: /no value/ });
  // biome-ignore lint/suspicious/noTemplateCurlyInString: Terraform template syntax
  t.throws(() => renderTemplate('${upper(x)}', { x: 'a' }), { message: /bare names/ });
  t.throws(() => renderTemplate('%{ if x }y%{ endif }', { x: 'a' }), { message: /directive/ });
});

/** Runs systemd-analyze verify on `names` under `root`; returns its output (empty when clean). */
function verifyUnits(root: string, names: readonly string[]): { status: number | null; output: string } {
  const r = spawnSync(
    'systemd-analyze',
    ['verify', `--root=${root}`, '--man=no', ...names.map((n) => `/etc/systemd/system/${n}`)],
    { encoding: 'utf8', timeout: 60_000 },
  );
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}

/** A root with the OS's units, ours, and the programs the units name (ours and the OS's) at their paths. */
function unitRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-units-'));
  fs.mkdirSync(path.join(root, 'usr/lib/systemd'), { recursive: true });
  execFileSync('cp', ['-a', '/usr/lib/systemd/system', path.join(root, 'usr/lib/systemd/')]);
  fs.mkdirSync(path.join(root, 'etc/systemd/system'), { recursive: true });
  for (const unit of units)
    fs.copyFileSync(path.join(unitDir, unit), path.join(root, 'etc/systemd/system', unit));
  const bin = path.join(root, 'opt/walrus/releases/r/bin');
  fs.mkdirSync(bin, { recursive: true });
  fs.symlinkSync('releases/r', path.join(root, 'opt/walrus/current'));
  for (const name of ['walrus-node', 'walrus-gateway'])
    fs.writeFileSync(path.join(bin, name), '#!/bin/sh\n', { mode: 0o755 });
  addOsProgramStandIns(root);
  return root;
}

test('the systemd units pass systemd-analyze verify, with hardening, a restart policy and a file limit', (t) => {
  const root = unitRoot();
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  t.deepEqual(verifyUnits(root, units), { status: 0, output: '' });
  for (const unit of units) {
    const text = fs.readFileSync(path.join(unitDir, unit), 'utf8');
    for (const line of [
      'User=walrus',
      'Restart=on-failure',
      'LimitNOFILE=65536',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'CapabilityBoundingSet=',
    ])
      t.true(text.split('\n').includes(line), `${unit} has ${line}`);
  }
  t.true(
    fs
      .readFileSync(path.join(unitDir, 'walrus-node.service'), 'utf8')
      .includes('\nReadWritePaths=/var/lib/walrus\n'),
  );
});

test('the verify check fails on a unit systemd would not run as written', (t) => {
  const root = unitRoot();
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const unit = path.join(root, 'etc/systemd/system/walrus-node.service');
  // systemd only warns (exit 0) about a bad value: the check counts any output as a failure.
  fs.writeFileSync(unit, fs.readFileSync(unit, 'utf8').replace('LimitNOFILE=65536', 'LimitNOFILE=lots'));
  t.not(verifyUnits(root, ['walrus-node.service']).output, '');
  fs.rmSync(path.join(root, 'opt/walrus/releases/r/bin/walrus-gateway'));
  t.not(verifyUnits(root, ['walrus-gateway.service']).status, 0);
});
