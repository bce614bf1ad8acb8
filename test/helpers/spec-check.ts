/**
 * Test helper: openapi.yaml as JSON (via `redocly bundle`, the linter we already depend on) and a
 * small JSON-Schema checker for the subset the spec uses (type, required, properties,
 * additionalProperties, items, enum, $ref, min/max), so route tests check answers against the
 * spec's response schemas instead of against hand-copied shapes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(import.meta.dirname, '../../..');

type Schema = Record<string, unknown>;
let cached: Schema | undefined;

export function loadSpec(): Schema {
  if (cached !== undefined) return cached;
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'walrus-spec-')), 'openapi.json');
  execFileSync(
    path.join(repoRoot, 'node_modules/.bin/redocly'),
    ['bundle', path.join(repoRoot, 'openapi.yaml'), '--ext', 'json', '-o', out],
    {
      stdio: 'ignore',
      env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' },
    },
  );
  cached = JSON.parse(fs.readFileSync(out, 'utf8')) as Schema;
  return cached;
}

function resolve(spec: Schema, schema: Schema): Schema {
  let s = schema;
  while (typeof s['$ref'] === 'string') {
    const parts = (s['$ref'] as string).replace(/^#\//, '').split('/');
    let node: unknown = spec;
    for (const part of parts)
      node = (node as Record<string, unknown>)[part.replace(/~1/g, '/').replace(/~0/g, '~')];
    s = node as Schema;
  }
  return s;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number';
  return typeof value;
}

/** Returns the problems found (empty when the value matches). */
export function checkSchema(spec: Schema, schemaIn: Schema, value: unknown, at = '$'): string[] {
  const schema = resolve(spec, schemaIn);
  const problems: string[] = [];
  if (Array.isArray(schema['allOf'])) {
    // Each part checks its own fields; an object's unexpected fields are judged on the union.
    const parts = (schema['allOf'] as Schema[]).map((part) => resolve(spec, part));
    for (const part of parts)
      problems.push(...checkSchema(spec, { ...part, additionalProperties: true }, value, at));
    const known = new Set(
      parts.flatMap((part) => Object.keys((part['properties'] as object | undefined) ?? {})),
    );
    if (typeOf(value) === 'object' && parts.some((part) => part['additionalProperties'] === false))
      for (const key of Object.keys(value as object))
        if (!known.has(key)) problems.push(`${at}: unexpected ${key}`);
    return problems;
  }
  const types =
    schema['type'] === undefined ? undefined : ([] as string[]).concat(schema['type'] as string | string[]);
  const actual = typeOf(value);
  if (types !== undefined && !types.includes(actual) && !(actual === 'integer' && types.includes('number'))) {
    return [`${at}: expected ${types.join('|')}, got ${actual}`];
  }
  if (Array.isArray(schema['enum']) && !(schema['enum'] as unknown[]).includes(value))
    problems.push(`${at}: not in enum`);
  if (actual === 'object') {
    const obj = value as Record<string, unknown>;
    for (const key of (schema['required'] as string[] | undefined) ?? []) {
      if (!(key in obj)) problems.push(`${at}: missing ${key}`);
    }
    const props = (schema['properties'] as Record<string, Schema> | undefined) ?? {};
    for (const [key, v] of Object.entries(obj)) {
      if (props[key] !== undefined) problems.push(...checkSchema(spec, props[key], v, `${at}.${key}`));
      else if (schema['additionalProperties'] === false) problems.push(`${at}: unexpected ${key}`);
      else if (typeof schema['additionalProperties'] === 'object') {
        problems.push(...checkSchema(spec, schema['additionalProperties'] as Schema, v, `${at}.${key}`));
      }
    }
  }
  if (actual === 'array' && schema['items'] !== undefined) {
    (value as unknown[]).forEach((item, i) => {
      problems.push(...checkSchema(spec, schema['items'] as Schema, item, `${at}[${i}]`));
    });
  }
  if (typeof value === 'number') {
    if (typeof schema['minimum'] === 'number' && value < schema['minimum'])
      problems.push(`${at}: below minimum`);
    if (typeof schema['maximum'] === 'number' && value > schema['maximum'])
      problems.push(`${at}: above maximum`);
  }
  return problems;
}

/** The response schema of an operation for a status and media type. */
export function responseSchema(operationId: string, status: number, mediaType: string): Schema {
  const spec = loadSpec();
  for (const item of Object.values(spec['paths'] as Record<string, Record<string, Schema>>)) {
    for (const op of Object.values(item)) {
      if (op?.['operationId'] !== operationId) continue;
      const responses = op['responses'] as Record<string, Schema>;
      const response = resolve(spec, responses[String(status)] ?? {});
      const content = response['content'] as Record<string, { schema: Schema }> | undefined;
      const entry = content?.[mediaType];
      if (entry === undefined)
        throw new Error(`${operationId} has no ${status} ${mediaType} response in openapi.yaml`);
      return entry.schema;
    }
  }
  throw new Error(`no operation ${operationId} in openapi.yaml`);
}

/** Problems of an HTTP answer against the spec: status listed, media type, body schema. */
export async function checkResponse(operationId: string, res: Response): Promise<string[]> {
  const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim();
  if (res.status === 204) return [];
  let schema: Schema;
  try {
    schema = responseSchema(operationId, res.status, type);
  } catch (error) {
    return [(error as Error).message];
  }
  if (type.endsWith('json')) return checkSchema(loadSpec(), schema, await res.clone().json());
  return [];
}
