/**
 * Bearer tokens with scopes and optional topic-name prefixes. Tokens come from a JSON file or the
 * WALRUS_GATEWAY_TOKENS env var: `{"tokens":[{"token":"…","scopes":["read","write"],"topicPrefixes":["app-"]}]}`.
 * With no tokens the gateway is open (server.ts says so loudly). Tokens are compared by SHA-256
 * digest lookup, so the lookup time does not depend on how much of a guess matches.
 *
 * SIGHUP replaces the tokens (gateway/reload.ts): each request is checked against the table of
 * the moment it arrives; an SSE tail already open keeps streaming until it closes. A replacement
 * never opens or closes the gateway (the caller refuses an empty list for a closed gateway).
 */
import assert from 'node:assert';
import {
  allowsTopic,
  openPrincipal,
  type Principal,
  type Scope,
  TokenTable,
  type TokenGrant,
} from '../../node/protocol/access-tokens.js';
import { ErrorCode, WalrusError } from '../../node/protocol/error-codes.js';

// The token document and its parser are shared with the nodes' client ports (access-tokens.ts).
export {
  allowsTopic,
  parseTokens,
  type Principal,
  type Scope,
  scopes,
  tokenCountMax,
  type TokenGrant,
  tokenLengthMax,
} from '../../node/protocol/access-tokens.js';

const noPrincipal: Principal = { scopes: new Set(), topicPrefixes: [] };

export class Authenticator {
  private table: TokenTable;

  constructor(grants: readonly TokenGrant[]) {
    this.table = new TokenTable(grants);
  }

  /** Requests from now on are checked against `grants`; as open or closed as before (asserted). */
  replace(grants: readonly TokenGrant[]): void {
    const table = new TokenTable(grants);
    assert(table.empty === this.table.empty, 'a token reload must not open or close the gateway');
    this.table = table;
  }

  get open(): boolean {
    return this.table.empty;
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
    const principal = this.table.lookup(token);
    if (principal === undefined) throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'the token is not valid');
    return principal;
  }
}

/** Throws FORBIDDEN unless the principal has the scope (and, given a topic, may touch it). */
export function requireScope(principal: Principal, scope: Scope, topic?: string): void {
  if (!principal.scopes.has(scope))
    throw new WalrusError(ErrorCode.FORBIDDEN, `this token lacks the '${scope}' scope`);
  if (topic !== undefined && !allowsTopic(principal, topic)) {
    throw new WalrusError(ErrorCode.FORBIDDEN, `this token may not access topic '${topic}'`);
  }
}
