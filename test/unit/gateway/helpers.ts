/** Shared set-up of the in-process gateway route tests: a gateway over a MemoryUpstream. */
import { createApp, type GatewayDeps } from '../../../gateway/app.js';
import { MemoryUpstream } from './memory-upstream.js';

export function makeGateway(overrides: Partial<GatewayDeps> = {}) {
  const upstream = new MemoryUpstream();
  const gateway = createApp({ upstream, nodes: ['127.0.0.1:9091'], ...overrides });
  const call = (path: string, init?: RequestInit) => gateway.app.request(path, init);
  const json = (method: string, path: string, body: unknown, headers: Record<string, string> = {}) =>
    gateway.app.request(path, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
  return { upstream, gateway, call, json };
}

export async function problemCode(res: Response): Promise<string> {
  if (!res.headers.get('content-type')?.startsWith('application/problem+json')) {
    throw new Error(`not problem+json: ${res.status} ${res.headers.get('content-type')} ${await res.text()}`);
  }
  return ((await res.json()) as { code: string }).code;
}
