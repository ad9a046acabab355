/**
 * One HTTP request to a network, bounded in time and cancellable.
 *
 * Celery's soft time limit is an exception raised between Python bytecodes, so a worker blocked
 * reading a socket never sees it. Here the request itself carries an `AbortSignal` that fires on
 * the per-request timeout *or* on the activity's cancellation, and aborting closes the socket:
 * a hung connection cannot hold an activity past its timeout, and a cancelled workflow stops its
 * calls. The timeout covers connecting, the headers and the whole body.
 * @module
 */
import type { ApiAnswer } from './error-rules';
import type { ResolvedNetwork } from './network';

/** One request. */
export interface NetworkRequest {
  /** @default 'GET' */
  method?: 'GET' | 'POST';
  path: string;
  query?: Record<string, string | number | undefined>;
  /** Sent as JSON. */
  body?: unknown;
  /** Extra headers (e.g. an idempotency key). */
  headers?: Record<string, string>;
  token: string;
  /** Sent as `X-Client-Ip`: lets a test network (or a proxy) see which worker address a call came from. */
  egressIp?: string;
}

/** An answer, or `status: 0` with `error` when there was none. */
export interface NetworkAnswer extends ApiAnswer {
  /** Why there was no answer: "timed out after 10000 ms", "ECONNREFUSED"… */
  error?: string;
  /** Wall time of the request. */
  elapsedMs: number;
}

/** Thrown (instead of answering) when `signal` was aborted by the caller: the activity was cancelled. */
export class RequestCancelledError extends Error {}

/** Sends one request; never throws for network trouble (that is `status: 0`), only for cancellation. */
export async function sendRequest(network: ResolvedNetwork, request: NetworkRequest, signal?: AbortSignal): Promise<NetworkAnswer> {
  const url = new URL(network.baseUrl + request.path);
  for (const [name, value] of Object.entries(request.query ?? {})) if (value !== undefined) url.searchParams.set(name, String(value));
  const headers: Record<string, string> = { accept: 'application/json', ...request.headers };
  if ('queryParam' in network.auth) url.searchParams.set(network.auth.queryParam, request.token);
  else headers.authorization = `Bearer ${request.token}`;
  if (request.egressIp) headers['x-client-ip'] = request.egressIp;

  const timeout = AbortSignal.timeout(network.requestTimeoutMs);
  const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
  const started = Date.now();
  try {
    const init: RequestInit = { method: request.method ?? 'GET', headers, signal: combined };
    if (request.body !== undefined) {
      headers['content-type'] = 'application/json';
      init.body = JSON.stringify(request.body);
    }
    const res = await fetch(url, init);
    const body = await res.text(); // under the same signal: a body that stops mid-way times out too
    const answerHeaders: Record<string, string> = {};
    res.headers.forEach((value, name) => (answerHeaders[name.toLowerCase()] = value));
    return { status: res.status, headers: answerHeaders, body, elapsedMs: Date.now() - started };
  } catch (err) {
    if (signal?.aborted) throw new RequestCancelledError(`request to ${network.name} ${request.path} cancelled`);
    const error = timeout.aborted
      ? `timed out after ${network.requestTimeoutMs} ms`
      : ((err as { cause?: { code?: string; message?: string } }).cause?.code ?? (err instanceof Error ? err.message : String(err)));
    return { status: 0, headers: {}, body: '', error, elapsedMs: Date.now() - started };
  }
}
