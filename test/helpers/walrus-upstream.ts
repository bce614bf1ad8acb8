/**
 * What real Walrus (nubskr/walrus, distributed-walrus) answers on the text protocol, from
 * test/fixtures/walrus-upstream/text-replies.json, and a checker that a reply of ours has the
 * same JSON shape: every field upstream sends is there with the same JSON type, except the fields
 * docs/protocol.md lists as differences (where we keep seed 002's type).
 */
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from './local-cluster.js';

export interface UpstreamCase {
  readonly upstream: string;
  readonly command: string;
  /** The exact reply bytes (UTF-8). */
  readonly reply?: string;
  /** The reply starts with these bytes. */
  readonly replyPrefix?: string;
  /** The reply is this JSON object's shape (an example upstream would send). */
  readonly json?: Record<string, unknown>;
  /** Paths (`a.b`; `*` stands for any map key or array element) where upstream may send null. */
  readonly nullable?: readonly string[];
}

export interface UpstreamFixtures {
  readonly about: string;
  readonly cases: Readonly<Record<string, UpstreamCase>>;
}

export function upstreamFixtures(): UpstreamFixtures {
  const file = path.join(repoRoot, 'test/fixtures/walrus-upstream/text-replies.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as UpstreamFixtures;
}

type JsonType = 'null' | 'boolean' | 'number' | 'string' | 'array' | 'object';

/**
 * METRICS fields whose JSON type differs from upstream's, because seed 002 documents another
 * type and the seed's wins. Path → the type we send. docs/protocol.md lists the same ones.
 */
export const metricsTypeDifferences: Readonly<Record<string, JsonType>> = {
  /** Seed: the applied index as a number. Upstream: a LogId object (or null). */
  last_applied: 'number',
};

/**
 * METRICS paths where we may send null though upstream never does (docs/protocol.md): a log
 * position's leader when this node cannot tell it.
 */
export const metricsOursNullable: readonly string[] = [
  'snapshot.leader_id',
  'snapshot.leader_id.node_id',
  'purged.leader_id',
  'purged.leader_id.node_id',
  'membership_config.log_id.leader_id',
  'membership_config.log_id.leader_id.node_id',
  'replication.*.leader_id',
  'replication.*.leader_id.node_id',
];

function typeOf(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v as JsonType;
}

/** A map keyed by ids (node or segment ids): every key is a decimal number. */
function isIdMap(v: Record<string, unknown>): boolean {
  const keys = Object.keys(v);
  return keys.length > 0 && keys.every((k) => /^\d+$/.test(k));
}

export interface ShapeOptions {
  /** Paths where upstream may send null (so may we). */
  readonly nullable?: readonly string[];
  /** Paths where we may send null though upstream does not. */
  readonly oursNullable?: readonly string[];
  /** Path → the JSON type we send instead of upstream's. */
  readonly differences?: Readonly<Record<string, JsonType>>;
}

/** Where `ours` does not have `upstream`'s shape (empty: it does). Extra fields of ours are fine. */
export function shapeProblems(
  upstream: unknown,
  ours: unknown,
  options: ShapeOptions = {},
  at = '',
): string[] {
  const here = at === '' ? '(root)' : at;
  const different = options.differences?.[at];
  if (different !== undefined)
    return typeOf(ours) === different ? [] : [`${here}: expected our ${different}, got ${typeOf(ours)}`];
  if (ours === null) {
    if (upstream === null || options.nullable?.includes(at) || options.oursNullable?.includes(at)) return [];
    return [`${here}: null where upstream sends ${typeOf(upstream)}`];
  }
  if (upstream === null) return [];
  if (typeOf(upstream) !== typeOf(ours))
    return [`${here}: ${typeOf(ours)} where upstream sends ${typeOf(upstream)}`];
  const child = (key: string): string => (at === '' ? key : `${at}.${key}`);
  if (Array.isArray(upstream)) {
    const [first] = upstream;
    if (first === undefined) return [];
    return (ours as unknown[]).flatMap((v) => shapeProblems(first, v, options, child('*')));
  }
  if (typeOf(upstream) !== 'object') return [];
  const u = upstream as Record<string, unknown>;
  const o = ours as Record<string, unknown>;
  if (isIdMap(u)) {
    const sample = Object.values(u)[0];
    return Object.entries(o).flatMap(([k, v]) =>
      /^\d+$/.test(k) ? shapeProblems(sample, v, options, child('*')) : [`${child(k)}: not an id key`],
    );
  }
  return Object.keys(u).flatMap((k) =>
    k in o ? shapeProblems(u[k], o[k], options, child(k)) : [`${child(k)}: missing`],
  );
}
