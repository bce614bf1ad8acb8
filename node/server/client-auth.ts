/**
 * Client-port authentication: who each connection is, and what it may do. With tokens configured
 * (`--client-tokens-file`, the gateway's document format: access-tokens.ts) a connection's first
 * binary request must be `authenticate` with one of them; before that every other request is
 * refused UNAUTHENTICATED and the connection is closed, and so is a connection whose token is
 * refused. Each request then needs the scope its op asks for (`scopeOf`) and, for a token limited
 * to topic prefixes, a topic it may touch (FORBIDDEN otherwise; the connection stays open).
 *
 * Guessing is bounded: each remote host may fail `failuresPerRemoteMax` times per
 * `failureWindowMs`; beyond it, its authenticate requests are refused BUSY without a look at the
 * token. The table of remote hosts is bounded too (the oldest entry is forgotten).
 *
 * The token table may be replaced while the node serves (SIGHUP, node/bin/node-security.ts):
 * authentications from then on use the new table; a connection already authenticated keeps the
 * principal it proved until it closes (NATS and etcd do the same on reload; Kafka would
 * re-authenticate on an interval). A replacement never turns authentication on or off.
 *
 * The Walrus text protocol cannot carry a token: it is served only when no tokens are configured,
 * unless the operator turns it on explicitly (`--text-protocol on`, logged at warn by the node).
 */
import assert from 'node:assert';
import { ErrorCode, WalrusError } from '../protocol/error-codes.js';
import {
  allowsTopic,
  openPrincipal,
  type Principal,
  type Scope,
  scopes as allScopes,
  TokenTable,
} from '../protocol/access-tokens.js';
import type { Request } from '../protocol/messages.js';

export const clientAuthLimits = {
  /** Failed authentications one remote host may make per window before it is refused BUSY. */
  failuresPerRemoteMax: 10,
  failureWindowMs: 10_000,
  /** Remote hosts whose failures are counted at once; beyond it the oldest is forgotten. */
  remoteCountMax: 4_096,
} as const;

/** The scope each op needs; peer-only ops are refused on the client port before this is asked. */
export function scopeOf(request: Request): Scope | null {
  switch (request.op) {
    case 'authenticate':
    case 'ping':
      return null;
    case 'append':
      return 'write';
    case 'createTopic':
    case 'deleteTopic':
    case 'configureTopic':
    case 'removeNode':
    case 'handOff':
    case 'nodeStopping':
      return 'admin';
    default:
      return 'read';
  }
}

interface FailureCount {
  windowStartMs: number;
  count: number;
}

export interface ClientAuthOptions {
  readonly tokens: TokenTable;
  /** Serve the Walrus text protocol (it cannot authenticate). */
  readonly textProtocol: boolean;
  readonly nowMs?: () => number;
}

export class ClientAuth {
  private tokens: TokenTable;
  readonly textProtocol: boolean;
  private readonly nowMs: () => number;
  /** Principals of authenticated connections, by connection id (forgotten on close). */
  private readonly principals = new Map<number, Principal>();
  /** Failed attempts by remote host, oldest first (Map order). */
  private readonly failures = new Map<string, FailureCount>();

  constructor(options: ClientAuthOptions) {
    this.tokens = options.tokens;
    this.textProtocol = options.textProtocol;
    this.nowMs = options.nowMs ?? Date.now;
  }

  /** No tokens: every connection may do everything. */
  static open(): ClientAuth {
    return new ClientAuth({ tokens: new TokenTable([]), textProtocol: true });
  }

  get required(): boolean {
    return !this.tokens.empty;
  }

  /** The connection's principal; undefined when it must authenticate first. */
  principalOf(connId: number): Principal | undefined {
    return this.required ? this.principals.get(connId) : openPrincipal;
  }

  /**
   * Checks `token` for connection `connId` from `remote` (host:port); returns the scopes granted.
   * Throws UNAUTHENTICATED (the caller closes the connection) or BUSY (too many failures).
   */
  authenticate(connId: number, remote: string, token: string): string[] {
    if (!this.required) return [...allScopes];
    const host = hostOf(remote);
    const nowMs = this.nowMs();
    const failed = this.failures.get(host);
    if (
      failed !== undefined &&
      nowMs - failed.windowStartMs < clientAuthLimits.failureWindowMs &&
      failed.count >= clientAuthLimits.failuresPerRemoteMax
    ) {
      throw new WalrusError(
        ErrorCode.BUSY,
        `too many failed authentications from ${host}: at most ${clientAuthLimits.failuresPerRemoteMax} per ${clientAuthLimits.failureWindowMs} ms; retry later`,
      );
    }
    const principal = this.tokens.lookup(token);
    if (principal === undefined) {
      this.countFailure(host, nowMs);
      throw new WalrusError(ErrorCode.UNAUTHENTICATED, 'the token is not valid; closing the connection');
    }
    this.principals.set(connId, principal);
    return [...principal.scopes];
  }

  /**
   * Null when the connection may send `request`; else the error to answer. UNAUTHENTICATED (the
   * connection is then closed) before authentication, FORBIDDEN for a missing scope or topic.
   */
  refusal(connId: number, request: Request): WalrusError | null {
    const principal = this.principalOf(connId);
    if (principal === undefined) {
      return new WalrusError(
        ErrorCode.UNAUTHENTICATED,
        `this node requires a token: authenticate before ${request.op}; closing the connection`,
      );
    }
    const scope = scopeOf(request);
    if (scope !== null && !principal.scopes.has(scope))
      return new WalrusError(ErrorCode.FORBIDDEN, `this token lacks the '${scope}' scope`);
    if ('topic' in request && !allowsTopic(principal, request.topic))
      return new WalrusError(ErrorCode.FORBIDDEN, `this token may not access topic '${request.topic}'`);
    return null;
  }

  /**
   * New authentications check `tokens` from now on; authenticated connections keep their
   * principal. The table must be as empty or non-empty as the one it replaces (the caller checks:
   * turning authentication on or off would change what every open connection may do).
   */
  replaceTokens(tokens: TokenTable): void {
    assert(tokens.empty === this.tokens.empty, 'a token reload must not turn authentication on or off');
    this.tokens = tokens;
  }

  /** Forgets a closed connection. */
  forget(connId: number): void {
    this.principals.delete(connId);
  }

  private countFailure(host: string, nowMs: number): void {
    const entry = this.failures.get(host);
    if (entry !== undefined && nowMs - entry.windowStartMs < clientAuthLimits.failureWindowMs) {
      entry.count += 1;
      return;
    }
    this.failures.delete(host);
    if (this.failures.size >= clientAuthLimits.remoteCountMax) {
      const oldest = this.failures.keys().next().value;
      if (oldest !== undefined) this.failures.delete(oldest);
    }
    this.failures.set(host, { windowStartMs: nowMs, count: 1 });
  }
}

/** The host part of `host:port` (`[::1]:5` → `[::1]`). */
function hostOf(remote: string): string {
  const colon = remote.lastIndexOf(':');
  return colon <= 0 ? remote : remote.slice(0, colon);
}
