/**
 * Reads the Terraform of infra/terraform without Terraform: every .tf of a module parsed with
 * @cdktf/hcl2json (HashiCorp's HCL parser compiled to WebAssembly) and merged into one document,
 * the references its expressions make (var.x, local.x, module.x, data.t.n, t.n), the variables a
 * templatefile() call passes, and a renderer for the subset of templatefile() our cloud-init
 * template keeps to: `${name}` substitutions and the `$${` / `%%{` escapes. Anything else in a
 * template (a function call, a directive) is refused rather than rendered differently from
 * Terraform.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

// Loaded without its type declarations: they pull in the DOM lib, which breaks the project's types.
const { parse } = createRequire(import.meta.url)('@cdktf/hcl2json') as {
  parse(fileName: string, text: string): Promise<Record<string, unknown>>;
};

type Blocks = Record<string, Record<string, unknown>[]>;

export interface TfModule {
  readonly dir: string;
  readonly files: readonly string[];
  readonly variables: Blocks;
  readonly outputs: Blocks;
  readonly locals: Record<string, unknown>;
  /** type → name → bodies */
  readonly resources: Record<string, Blocks>;
  readonly data: Record<string, Blocks>;
  readonly modules: Blocks;
  readonly terraform: Record<string, unknown>[];
}

function mergeBlocks(into: Record<string, unknown>, from: Record<string, unknown> | undefined): void {
  for (const [key, value] of Object.entries(from ?? {})) {
    if (key in into) throw new Error(`declared twice: ${key}`);
    into[key] = value;
  }
}

/** Parses every .tf file of `dir` (not its subfolders); a syntax error rejects, naming the file. */
export async function readModule(dir: string): Promise<TfModule> {
  const files = fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.tf'))
    .sort();
  const module = {
    dir,
    files,
    variables: {} as Blocks,
    outputs: {} as Blocks,
    locals: {} as Record<string, unknown>,
    resources: {} as Record<string, Blocks>,
    data: {} as Record<string, Blocks>,
    modules: {} as Blocks,
    terraform: [] as Record<string, unknown>[],
  };
  for (const file of files) {
    const doc = (await parse(file, fs.readFileSync(path.join(dir, file), 'utf8'))) as Record<string, never>;
    mergeBlocks(module.variables, doc['variable']);
    mergeBlocks(module.outputs, doc['output']);
    mergeBlocks(module.modules, doc['module']);
    for (const locals of (doc['locals'] ?? []) as Record<string, unknown>[])
      mergeBlocks(module.locals, locals);
    for (const [type, byName] of Object.entries((doc['resource'] ?? {}) as Record<string, Blocks>)) {
      module.resources[type] ??= {};
      mergeBlocks(module.resources[type]!, byName);
    }
    for (const [type, byName] of Object.entries((doc['data'] ?? {}) as Record<string, Blocks>)) {
      module.data[type] ??= {};
      mergeBlocks(module.data[type]!, byName);
    }
    module.terraform.push(...((doc['terraform'] ?? []) as Record<string, unknown>[]));
  }
  return module;
}

/** Every string in `value` that holds an expression (hcl2json writes expressions as `${…}`). */
export function expressions(value: unknown): string[] {
  if (typeof value === 'string') return value.includes('${') ? [value] : [];
  if (Array.isArray(value)) return value.flatMap(expressions);
  if (value !== null && typeof value === 'object') return Object.values(value).flatMap(expressions);
  return [];
}

export interface Reference {
  readonly kind: 'var' | 'local' | 'module' | 'data' | 'resource';
  /** `name` for var/local/module, `type.name` for data and resources. */
  readonly name: string;
}

/** The references in expressions; `resourcePrefixes` are the provider names (`google`). */
export function references(exprs: readonly string[], resourcePrefixes: readonly string[]): Reference[] {
  const found = new Map<string, Reference>();
  const add = (ref: Reference): void => {
    found.set(`${ref.kind}:${ref.name}`, ref);
  };
  const resource = new RegExp(
    `(?<![\\w.])((?:${resourcePrefixes.join('|')})_[a-z0-9_]+)\\.([A-Za-z_][\\w-]*)`,
    'g',
  );
  for (const text of exprs) {
    for (const m of text.matchAll(/(?<![\w.])(var|local|module)\.([A-Za-z_][\w-]*)/g))
      add({ kind: m[1] as 'var' | 'local' | 'module', name: m[2]! });
    for (const m of text.matchAll(/(?<![\w.])data\.([a-z0-9_]+)\.([A-Za-z_][\w-]*)/g))
      add({ kind: 'data', name: `${m[1]}.${m[2]}` });
    for (const m of text.matchAll(resource)) add({ kind: 'resource', name: `${m[1]}.${m[2]}` });
  }
  return [...found.values()];
}

/** Whether `module` declares what `ref` names. */
export function declares(module: TfModule, ref: Reference): boolean {
  switch (ref.kind) {
    case 'var':
      return ref.name in module.variables;
    case 'local':
      return ref.name in module.locals;
    case 'module':
      return ref.name in module.modules;
    case 'data': {
      const [type, name] = ref.name.split('.') as [string, string];
      return name in (module.data[type] ?? {});
    }
    case 'resource': {
      const [type, name] = ref.name.split('.') as [string, string];
      return name in (module.resources[type] ?? {});
    }
  }
}

/**
 * The templatefile() calls in the module's expressions: the template path (relative to the
 * module, with `${path.module}` resolved) and the names of the variables the call passes.
 */
export function templatefileCalls(module: TfModule): { template: string; keys: string[] }[] {
  const calls: { template: string; keys: string[] }[] = [];
  const all = [
    ...Object.values(module.resources).flatMap((byName) => expressions(byName)),
    ...expressions(module.locals),
    ...expressions(module.outputs),
  ];
  for (const text of all) {
    for (const m of text.matchAll(/templatefile\("\$\{path\.module\}\/([^"]+)",\s*\{([\s\S]*?)\n\s*\}\)/g)) {
      const keys = [...m[2]!.matchAll(/^\s*([a-z_][a-z0-9_]*)\s*=/gm)].map((k) => k[1]!);
      calls.push({ template: path.resolve(module.dir, m[1]!), keys });
    }
  }
  return calls;
}

/** The names a template substitutes (`${name}`), in order of first use. */
export function templateNames(text: string): string[] {
  const names: string[] = [];
  for (const m of text.matchAll(/(?<!\$)\$\{\s*([^}]*?)\s*\}/g))
    if (!names.includes(m[1]!)) names.push(m[1]!);
  return names;
}

/**
 * Renders `text` as templatefile() would, for the subset it supports: `${name}` with a string or
 * number, `$${` → `${`, `%%{` → `%{`. Throws on a directive, an expression that is not a bare
 * name, or a name without a value (Terraform fails on that too).
 */
export function renderTemplate(text: string, vars: Readonly<Record<string, string | number>>): string {
  let out = '';
  for (let i = 0; i < text.length; ) {
    if (text.startsWith('$${', i) || text.startsWith('%%{', i)) {
      out += `${text[i]}{`;
      i += 3;
    } else if (text.startsWith('%{', i)) {
      throw new Error(`template directive at ${i}: not in the subset this renderer keeps to`);
    } else if (text.startsWith('${', i)) {
      const end = text.indexOf('}', i);
      if (end < 0) throw new Error(`unclosed \${ at ${i}`);
      const name = text.slice(i + 2, end).trim();
      if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`template expression '${name}': only bare names`);
      const value = vars[name];
      if (value === undefined) throw new Error(`template variable '${name}' has no value`);
      out += String(value);
      i = end + 1;
    } else {
      out += text[i];
      i += 1;
    }
  }
  return out;
}
