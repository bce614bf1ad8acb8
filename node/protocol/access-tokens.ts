/**
 * Access tokens with scopes and optional topic-name prefixes: one document format for the
 * gateway's bearer tokens and the nodes' client-port tokens,
 * `{"tokens":[{"token":"…","scopes":["read","write"],"topicPrefixes":["app-"]}]}`. Here because
 * both the node and the gateway read it and the protocol folder is what both may import.
 *
 * Tokens are looked up by SHA-256 digest, so the lookup time does not depend on how much of a guess
 * matches. `admin` implies `read` and `write`.
 */
import { createHash } from 'node:crypto';
import { protocolLimits } from './limits.js';

export const scopes = ['read', 'write', 'admin'] as const;
export type Scope = (typeof scopes)[number];

export const tokenCountMax = 10_000;
export const tokenLengthMax = protocolLimits.tokenSizeMaxBytes;
export const tokenLengthMin = 8;

export interface TokenGrant {
  readonly token: string;
  /** `admin` implies `read` and `write`. */
  readonly scopes: readonly Scope[];
  /** When set, the token may only touch topics whose name starts with one of these. */
  readonly topicPrefixes?: readonly string[];
}

export interface Principal {
  readonly scopes: ReadonlySet<Scope>;
  readonly topicPrefixes: readonly string[] | null;
}

/** Everything allowed: a node or gateway with no tokens configured. */
export const openPrincipal: Principal = { scopes: new Set(scopes), topicPrefixes: null };

/** Parses and validates a token document; throws a plain Error naming the problem (start-up only). */
export function parseTokens(text: string): TokenGrant[] {
  const doc = JSON.parse(text) as unknown;
  const list = (doc as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw new Error('token document must be {"tokens": [...]}');
  if (list.length > tokenCountMax) throw new Error(`more than ${tokenCountMax} tokens`);
  return list.map((entry: unknown, i): TokenGrant => {
    const e = entry as Partial<TokenGrant> | null;
    if (typeof e?.token !== 'string' || e.token.length < tokenLengthMin || e.token.length > tokenLengthMax) {
      throw new Error(
        `tokens[${i}].token must be a string of ${tokenLengthMin}..${tokenLengthMax} characters`,
      );
    }
    if (!/^[\x21-\x7e]+$/.test(e.token)) throw new Error(`tokens[${i}].token must be visible ASCII`);
    if (!Array.isArray(e.scopes) || e.scopes.some((s) => !scopes.includes(s as Scope))) {
      throw new Error(`tokens[${i}].scopes must be a list of ${scopes.join(', ')}`);
    }
    if (
      e.topicPrefixes !== undefined &&
      (!Array.isArray(e.topicPrefixes) || e.topicPrefixes.some((p) => typeof p !== 'string'))
    ) {
      throw new Error(`tokens[${i}].topicPrefixes must be a list of strings`);
    }
    return {
      token: e.token,
      scopes: e.scopes,
      ...(e.topicPrefixes ? { topicPrefixes: e.topicPrefixes } : {}),
    };
  });
}

function digest(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

/** The principals of a token list, by digest. */
export class TokenTable {
  private readonly byDigest = new Map<string, Principal>();

  constructor(grants: readonly TokenGrant[]) {
    for (const grant of grants) {
      const set = new Set<Scope>(grant.scopes);
      if (set.has('admin')) {
        set.add('read');
        set.add('write');
      }
      this.byDigest.set(digest(grant.token), { scopes: set, topicPrefixes: grant.topicPrefixes ?? null });
    }
  }

  /** No tokens: everything is open. */
  get empty(): boolean {
    return this.byDigest.size === 0;
  }

  /** Distinct tokens in the table. */
  get size(): number {
    return this.byDigest.size;
  }

  /** The principal of `token`, or undefined when it is not one of the table's. */
  lookup(token: string): Principal | undefined {
    return this.byDigest.get(digest(token));
  }
}

export function allowsTopic(principal: Principal, topic: string): boolean {
  return principal.topicPrefixes === null || principal.topicPrefixes.some((p) => topic.startsWith(p));
}
