/**
 * Bearer tokens with scopes and optional topic-name prefixes. Tokens come from a JSON file or the
 * WALRUS_GATEWAY_TOKENS env var: `{"tokens":[{"token":"…","scopes":["read","write"],"topicPrefixes":["app-"]}]}`.
 * With no tokens the gateway is open (server.ts says so loudly). Tokens are compared by SHA-256
 * digest lookup, so the lookup time does not depend on how much of a guess matches.
 */
import { createHash } from 'node:crypto';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';

export const scopes = ['read', 'write', 'admin'] as const;
export type Scope = (typeof scopes)[number];

export const tokenCountMax = 10_000;
export const tokenLengthMax = 512;

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

const openPrincipal: Principal = { scopes: new Set(scopes), topicPrefixes: null };
const noPrincipal: Principal = { scopes: new Set(), topicPrefixes: [] };

/** Parses and validates the token document; throws a plain Error naming the problem (start-up only). */
export function parseTokens(text: string): TokenGrant[] {
  const doc = JSON.parse(text) as unknown;
  const list = (doc as { tokens?: unknown } | null)?.tokens;
  if (!Array.isArray(list)) throw new Error('token document must be {"tokens": [...]}');
  if (list.length > tokenCountMax) throw new Error(`more than ${tokenCountMax} tokens`);
  return list.map((entry: unknown, i): TokenGrant => {
    const e = entry as Partial<TokenGrant> | null;
    if (typeof e?.token !== 'string' || e.token.length < 8 || e.token.length > tokenLengthMax) {
      throw new Error(`tokens[${i}].token must be a string of 8..${tokenLengthMax} characters`);
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

export class Authenticator {
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

  get open(): boolean {
    return this.byDigest.size === 0;
  }

  /** Who calls a public route: everything when open, nothing otherwise. */
  anonymous(): Principal {
    return this.open ? openPrincipal : noPrincipal;
  }

  /** The principal for an Authorization header value (or an SSE `access_token` query value). */
  authenticate(authorization: string | undefined, queryToken: string | undefined): Principal {
    if (this.open) return openPrincipal;
    let token: string | undefined;
    if (authorization !== undefined) {
      const match = /^Bearer ([\x21-\x7e]+)$/i.exec(authorization.trim());
      if (match === null)
        throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'Authorization must be "Bearer <token>"');
      token = match[1];
    } else {
      token = queryToken;
    }
    if (token === undefined) throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'a bearer token is required');
    const principal = this.byDigest.get(digest(token));
    if (principal === undefined) throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'the token is not valid');
    return principal;
  }
}

export function allowsTopic(principal: Principal, topic: string): boolean {
  return principal.topicPrefixes === null || principal.topicPrefixes.some((p) => topic.startsWith(p));
}

/** Throws FORBIDDEN unless the principal has the scope (and, given a topic, may touch it). */
export function requireScope(principal: Principal, scope: Scope, topic?: string): void {
  if (!principal.scopes.has(scope))
    throw new WalrusError(ErrorCode.FORBIDDEN, `this token lacks the '${scope}' scope`);
  if (topic !== undefined && !allowsTopic(principal, topic)) {
    throw new WalrusError(ErrorCode.FORBIDDEN, `this token may not access topic '${topic}'`);
  }
}
