/**
 * tail(): an async iterator of records over SSE that survives disconnects. It keeps the offset of
 * the last record it yielded and reconnects with `Last-Event-ID`, so a gateway restart, a slow-
 * consumer disconnect or a network blip loses and repeats nothing. `break` (or an abort) closes
 * the connection. The buffer is bounded: the body is read only when the caller asks for the next
 * record, at most one network chunk is parsed ahead, and the server's per-connection bound does
 * the rest (it disconnects a reader that falls too far behind, and the iterator resumes).
 * Values are decoded as the caller chose (`values: 'string' | 'bytes'`).
 */
import { backoffDelayMs, type RetryPolicy, sleep } from './backoff.js';
import { errorFromResponse, WalrusApiError, WalrusNetworkError } from './errors.js';
import type { components } from './generated/api.js';
import { SseParser } from './sse-parser.js';
import { decodeRecord, type ValueOf, type ValueType, type WalrusRecord } from './values.js';

type WireRecord = components['schemas']['Record'];

/** Names of the SSE event that carries a problem (the spec's `error`; older gateways sent `problem`). */
const problemEventNames: ReadonlySet<string> = new Set(['error', 'problem']);

export interface TailOptions<V extends ValueType = 'string'> {
  /** Where to start: an offset, 'start' (offset 0 / first stored) or 'end' (only new records; default). */
  readonly from?: number | 'start' | 'end';
  /** Record values as `'string'` (UTF-8 text; default) or `'bytes'` (Uint8Array). */
  readonly values?: V;
  readonly signal?: AbortSignal;
  /** Consecutive failed (re)connects before the iterator throws (default 10). */
  readonly reconnectAttemptCountMax?: number;
  readonly retry?: Partial<RetryPolicy>;
}

export interface TailContext {
  readonly baseUrl: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly fetch: typeof fetch;
}

const reconnectAttemptCountMaxDefault = 10;
/** Events parsed from one network chunk wait here until yielded; more than this is a protocol error. */
export const tailPendingEventCountMax = 100_000;

export async function* tailRecords<V extends ValueType = 'string'>(
  ctx: TailContext,
  topic: string,
  options: TailOptions<V> = {},
): AsyncGenerator<WalrusRecord<ValueOf<V>>, void, undefined> {
  // Called as a plain function: a browser's fetch throws "Illegal invocation" as a method of ctx.
  const fetchFn = ctx.fetch;
  const as = (options.values ?? 'string') as V;
  const policy: RetryPolicy = { attemptCountMax: 1, delayMsMin: 100, delayMsMax: 2_000, ...options.retry };
  const attemptsMax = options.reconnectAttemptCountMax ?? reconnectAttemptCountMaxDefault;
  let lastOffset: number | undefined = typeof options.from === 'number' ? options.from - 1 : undefined;
  let failures = 0;
  const base = `${ctx.baseUrl.replace(/\/$/, '')}/v1/topics/${encodeURIComponent(topic)}/records`;

  for (;;) {
    const controller = new AbortController();
    const onAbort = (): void => controller.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    let url = base;
    const headers: Record<string, string> = { ...ctx.headers, accept: 'text/event-stream' };
    if (lastOffset !== undefined) headers['last-event-id'] = String(lastOffset);
    else if (options.from === 'start') url += '?offset=0&clamp=true';
    let retryAfterProblem: WalrusApiError | undefined;
    try {
      options.signal?.throwIfAborted();
      let res: Response;
      try {
        res = await fetchFn(url, { headers, signal: controller.signal });
      } catch (error) {
        if (options.signal?.aborted) throw error;
        throw new WalrusNetworkError('UNAVAILABLE', `cannot reach ${ctx.baseUrl}: ${String(error)}`, {
          cause: error,
        });
      }
      if (!res.ok) throw await errorFromResponse(res);
      if (res.body === null) throw new WalrusApiError('INTERNAL', res.status, 'the event stream has no body');
      failures = 0;
      const pending: WireRecord[] = [];
      const parser = new SseParser((event) => {
        if (event.event === 'message') {
          if (pending.length >= tailPendingEventCountMax) throw new Error('too many events in one chunk');
          pending.push(JSON.parse(event.data) as WireRecord);
        } else if (problemEventNames.has(event.event)) {
          const problem = JSON.parse(event.data) as { code?: string; status?: number; detail?: string };
          retryAfterProblem = new WalrusApiError(
            problem.code ?? 'UNAVAILABLE',
            problem.status ?? 503,
            problem.detail ?? '',
            problem,
          );
        }
      });
      const decoder = new TextDecoder();
      const reader = res.body.getReader();
      try {
        for (;;) {
          let chunk: Awaited<ReturnType<typeof reader.read>>;
          try {
            chunk = await reader.read();
          } catch (error) {
            if (options.signal?.aborted) throw error;
            throw new WalrusNetworkError('UNAVAILABLE', `the event stream broke: ${String(error)}`, {
              cause: error,
            });
          }
          const { value, done } = chunk;
          if (done) break;
          parser.push(decoder.decode(value, { stream: true }));
          while (pending.length > 0) {
            const record = pending.shift()!;
            if (lastOffset !== undefined && record.offset <= lastOffset) continue;
            lastOffset = record.offset;
            yield decodeRecord(record, as);
          }
          // The gateway opens each stream with `id: <start - 1>`: remember the position even
          // before the first record, so a reconnect resumes there rather than at a later end.
          const position = Number(parser.lastEventId);
          if (parser.lastEventId !== '' && Number.isSafeInteger(position) && position >= -1) {
            lastOffset = Math.max(lastOffset ?? -1, position);
          }
          if (retryAfterProblem !== undefined) break;
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
      if (retryAfterProblem !== undefined && !retryAfterProblem.retryable) throw retryAfterProblem;
    } catch (error) {
      if (options.signal?.aborted) return;
      if (!(error instanceof WalrusApiError) || !error.retryable) throw error;
      failures++;
      if (failures >= attemptsMax) throw error;
      await sleep(backoffDelayMs(policy, failures), options.signal).catch(() => {});
      if (options.signal?.aborted) return;
      continue;
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      controller.abort();
    }
    // The stream ended (gateway shutdown, slow-consumer close): resume after a short pause.
    await sleep(policy.delayMsMin, options.signal).catch(() => {});
    if (options.signal?.aborted) return;
  }
}
