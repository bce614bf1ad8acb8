/**
 * The node's HTTP admin port (`--admin-port`, off unless given): `/metrics` for Prometheus,
 * `/health` (liveness: the process answers) and `/ready` (readiness: topics recovered, client
 * port bound, a Raft leader known; 503 with the reasons otherwise) for load balancers, systemd and
 * orchestrators. A small node:http server rather than the gateway's Hono app: three read-only
 * routes, no body, no dependency of the node on the gateway. Bounded: connections, header size,
 * header and request timeouts, and scrapes in flight. Errors are problem+json with a code from
 * node/protocol/error-codes.ts, as the gateway answers them.
 */
import http from 'node:http';
import { ErrorCode, errorCodeInfo } from '../protocol/error-codes.js';

export const adminServerLimits = {
  /** Connections held at once (Prometheus, a health checker, an operator's curl). */
  connectionCountMax: 64,
  /** Request headers larger than this are refused by node:http (431). */
  headerSizeMaxBytes: 8 * 1024,
  /** Headers must arrive within this long; the whole request within requestTimeoutMs. */
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  /** Scrapes built at once; more are answered BUSY (a scrape walks every topic). */
  scrapeInFlightMax: 4,
} as const;

export interface Readiness {
  readonly ready: boolean;
  /** Why not, in words an operator can act on (empty when ready). */
  readonly reasons: readonly string[];
}

export interface AdminServerOptions {
  readonly host: string;
  readonly port: number;
  readonly nodeId: number;
  /** The exposition text and its content type. */
  readonly scrape: () => Promise<{ text: string; contentType: string }>;
  readonly readiness: () => Readiness;
}

type Code = (typeof ErrorCode)[keyof typeof ErrorCode];

function problem(
  res: http.ServerResponse,
  code: Code,
  detail: string,
  headers: Record<string, string> = {},
): void {
  const info = errorCodeInfo[code];
  const body = JSON.stringify({
    type: 'about:blank',
    title: info.title,
    status: info.httpStatus,
    code,
    detail,
  });
  res.writeHead(info.httpStatus, {
    'content-type': 'application/problem+json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
}

function json(res: http.ServerResponse, status: number, value: unknown, head: boolean): void {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(head ? undefined : body);
}

export class AdminServer {
  private readonly server: http.Server;
  private scrapesInFlight = 0;

  constructor(private readonly options: AdminServerOptions) {
    this.server = http.createServer(
      {
        maxHeaderSize: adminServerLimits.headerSizeMaxBytes,
        headersTimeout: adminServerLimits.headersTimeoutMs,
        requestTimeout: adminServerLimits.requestTimeoutMs,
        keepAliveTimeout: adminServerLimits.keepAliveTimeoutMs,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.maxConnections = adminServerLimits.connectionCountMax;
  }

  /** Binds; resolves with the bound address (port 0 picks a free one). */
  listen(): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.options.port, this.options.host, () => {
        this.server.off('error', reject);
        const address = this.server.address();
        resolve({
          host: this.options.host,
          port: typeof address === 'object' && address !== null ? address.port : this.options.port,
        });
      });
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    const route = path === '/metrics' || path === '/health' || path === '/ready' ? path : null;
    if (route === null) {
      problem(res, ErrorCode.NOT_FOUND, `no such admin route '${path}': try /metrics, /health or /ready`);
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      problem(res, ErrorCode.METHOD_NOT_ALLOWED, `${route} answers GET and HEAD only`, {
        allow: 'GET, HEAD',
      });
      return;
    }
    const head = req.method === 'HEAD';
    if (route === '/health') {
      json(res, 200, { status: 'ok', node_id: this.options.nodeId }, head);
      return;
    }
    if (route === '/ready') {
      const r = this.options.readiness();
      if (r.ready) json(res, 200, { status: 'ready', node_id: this.options.nodeId }, head);
      else
        problem(
          res,
          ErrorCode.UNAVAILABLE,
          `node ${this.options.nodeId} is not ready: ${r.reasons.join('; ')}`,
        );
      return;
    }
    if (this.scrapesInFlight >= adminServerLimits.scrapeInFlightMax) {
      problem(res, ErrorCode.BUSY, `${this.scrapesInFlight} scrapes are being built; retry`, {
        'retry-after': '1',
      });
      return;
    }
    this.scrapesInFlight++;
    try {
      const { text, contentType } = await this.options.scrape();
      res.writeHead(200, {
        'content-type': contentType,
        'content-length': Buffer.byteLength(text),
        'cache-control': 'no-store',
      });
      res.end(head ? undefined : text);
    } catch (error) {
      problem(res, ErrorCode.INTERNAL, `the scrape failed: ${(error as Error).message}`);
    } finally {
      this.scrapesInFlight--;
    }
  }
}
