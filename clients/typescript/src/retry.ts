/**
 * Retries within one deadline: which status codes are retried, and how long to wait between
 * attempts. Mirrors the Python client's gRPC service config (5 attempts, back-off drawn
 * uniformly in [0, 50 ms * 2^n], at most 400 ms), plus RESOURCE_EXHAUSTED, which the server
 * returns when it is at its bound on concurrent calls (nothing was read or written).
 */
import { Code } from "@connectrpc/connect";

/** Attempts per call (first try + 4 retries), all within the call's deadline. */
export const RETRY_MAX_ATTEMPTS = 5;

const INITIAL_BACKOFF_MS = 50;
const MAX_BACKOFF_MS = 400;

/**
 * Codes a call is retried on. Both mean the server answered nothing and wrote nothing, so a
 * retry is safe even for PushState; every other code (NOT_FOUND, INVALID_ARGUMENT, ...) would
 * only repeat itself.
 */
export const RETRYABLE_CODES: ReadonlySet<Code> = new Set([Code.Unavailable, Code.ResourceExhausted]);

/** Wait before retry number `retry` (1-based): uniform in [0, min(400, 50 * 2^(retry-1))] ms. */
export function backoffMs(retry: number, random: () => number = Math.random): number {
  const cap = Math.min(MAX_BACKOFF_MS, INITIAL_BACKOFF_MS * 2 ** (retry - 1));
  return random() * cap;
}
