/**
 * ObservationClient: the hand-written layer over the generated ObservationService client.
 *
 * What enters: a target ("host:port"), options (deadline, contract check). What leaves:
 * ObservationResult (a Float32Array(15) in contract order with per-view provenance),
 * PushStateResult, and ObservationClientError subclasses (errors.ts) for every failure.
 *
 * Every call has one deadline (default 1 s) that covers its retries; only UNAVAILABLE and
 * RESOURCE_EXHAUSTED are retried (retry.ts). The first call checks the server's contract hash
 * (DescribeObservation) against CONTRACT_HASH, the value the Python client uses too.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate, timestampFromDate } from "@bufbuild/protobuf/wkt";
import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createGrpcTransport, Http2SessionManager } from "@connectrpc/connect-node";

import { CONTRACT_HASH, N_FEATURES } from "./contract.js";
import {
  ContractMismatchError,
  MalformedObservationError,
  ObservationRpcError,
  codeName,
} from "./errors.js";
import {
  FallbackReason,
  Freshness,
  ObservationService,
  PushStateRequestSchema,
  ValueSource,
  type Observation,
  type ObservationContract,
} from "./gen/usdcop/observation/v1/observation_pb.js";
import { RETRY_MAX_ATTEMPTS, RETRYABLE_CODES, backoffMs } from "./retry.js";

/** Where the client connects when no target is given (the server's default port). */
export const DEFAULT_TARGET = "127.0.0.1:50051";

/** Deadline of every call, retries included, in milliseconds. */
export const DEFAULT_TIMEOUT_MS = 1000;

export interface ObservationClientOptions {
  /** Deadline of every call, retries included, ms (default 1000). */
  timeoutMs?: number;
  /** Check the server's contract hash on first use (default true). */
  checkContract?: boolean;
  /** The contract hash to accept (default CONTRACT_HASH, CTR-FEATURE-001). */
  expectedHash?: string;
  /** Connect interceptors, run on every attempt (e.g. to add metadata or to count attempts). */
  interceptors?: Interceptor[];
}

export interface CallOptions {
  /** This call's deadline, ms (default: the client's timeoutMs). */
  timeoutMs?: number;
  /** Cancels the call. */
  signal?: AbortSignal;
}

/** Where one feature view's values came from. */
export interface ViewInfo {
  /** Feature view name, e.g. "technical_features". */
  readonly view: string;
  /** Event time of the values served for this view. */
  readonly eventTime: Date;
  /** "fresh" or "expired". */
  readonly freshness: string;
  /** "online_store" (Redis, Feast's layout) or "compute_fallback". */
  readonly source: string;
  /** "none" for the online store, else e.g. "store_unavailable", "view_expired". */
  readonly fallbackReason: string;
}

/** One observation: 15 float32 values in contract order with their provenance. */
export interface ObservationResult {
  readonly symbol: string;
  /** Length 15, in contract order (FEATURE_NAMES). */
  readonly values: Float32Array;
  /** One entry per feature view, in contract order. */
  readonly views: readonly ViewInfo[];
  /** True when the server answered from its local TTL cache. */
  readonly fromCache: boolean;
  /** When the server assembled the answer. */
  readonly servedAt: Date;
  /** The raw answer. */
  readonly proto: Observation;
}

/** A symbol of a getObservations call that has no observation. */
export interface SymbolFailure {
  readonly symbol: string;
  /** The status this symbol would have failed with in getObservation. */
  readonly error: ObservationRpcError;
}

export interface WatchOptions {
  /** Heartbeat period asked of the server, ms (default 5000); 3 silent periods end the stream. */
  heartbeatMs?: number;
  /** Ends the stream. */
  signal?: AbortSignal;
}

/** Result of pushState. */
export interface PushStateResult {
  /** False when the store already held a newer or equal event time (nothing changed). */
  readonly applied: boolean;
  /** time_normalized as written (or as it would have been). */
  readonly timeNormalized: number;
}

function enumLabel(names: Record<number, string>, value: number): string {
  return (names[value] ?? String(value)).toLowerCase();
}

function toDate(ts: Timestamp | undefined): Date {
  return ts === undefined ? new Date(0) : timestampDate(ts);
}

function baseUrl(target: string): string {
  return /^https?:\/\//.test(target) ? target : `http://${target}`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * A client of ObservationService over one HTTP/2 connection (gRPC protocol).
 *
 * @example
 *   const client = new ObservationClient("127.0.0.1:50051");
 *   const obs = await client.getObservation("USDCOP");
 *   obs.values;          // Float32Array(15), contract order
 *   obs.views[0].source; // "online_store" or "compute_fallback"
 *   client.close();
 */
export class ObservationClient {
  /** The server address. */
  readonly target: string;
  /** Deadline of every call, retries included, ms. */
  readonly timeoutMs: number;
  /** The contract hash this client accepts. */
  readonly expectedHash: string;
  private readonly sessions: Http2SessionManager;
  private readonly rpc: Client<typeof ObservationService>;
  private contractCheck: Promise<void> | null;

  constructor(target: string = DEFAULT_TARGET, options: ObservationClientOptions = {}) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      throw new RangeError(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    this.target = target;
    this.timeoutMs = timeoutMs;
    this.expectedHash = options.expectedHash ?? CONTRACT_HASH;
    this.sessions = new Http2SessionManager(baseUrl(target));
    const transport = createGrpcTransport({
      baseUrl: baseUrl(target),
      sessionManager: this.sessions,
      interceptors: options.interceptors ?? [],
    });
    this.rpc = createClient(ObservationService, transport);
    this.contractCheck = options.checkContract === false ? Promise.resolve() : null;
  }

  /** The latest observation of `symbol`: Float32Array(15) in contract order + provenance. */
  async getObservation(symbol: string, options: CallOptions = {}): Promise<ObservationResult> {
    const deadline = this.deadline(options);
    await this.ensureContract(deadline, options.signal);
    const observation = await this.withRetries(deadline, options.signal, (timeoutMs, signal) =>
      this.rpc.getObservation({ symbol }, { timeoutMs, signal }),
    );
    return this.resultFromProto(observation);
  }

  /**
   * The latest observation of each symbol, in request order, in one call (one online-store
   * round trip on the server). A symbol the server cannot answer gets a SymbolFailure; the
   * call itself fails only as a whole (e.g. INVALID_ARGUMENT for an empty list).
   */
  async getObservations(
    symbols: readonly string[],
    options: CallOptions = {},
  ): Promise<(ObservationResult | SymbolFailure)[]> {
    const deadline = this.deadline(options);
    await this.ensureContract(deadline, options.signal);
    const reply = await this.withRetries(deadline, options.signal, (timeoutMs, signal) =>
      this.rpc.getObservations({ symbols: [...symbols] }, { timeoutMs, signal }),
    );
    return reply.results.map((entry) => {
      if (entry.result.case === "observation") {
        return this.resultFromProto(entry.result.value);
      }
      const error = entry.result.case === "error" ? entry.result.value : undefined;
      return {
        symbol: entry.symbol,
        error: new ObservationRpcError(
          (error?.code ?? Code.Unknown) as Code,
          error?.message || "no observation and no error in the answer",
        ),
      };
    });
  }

  /**
   * Each symbol's current observation, then one per change, for as long as the caller
   * iterates (break, or abort options.signal, to end the stream). A stream that fails or stays
   * silent for 3 heartbeat periods ends with an ObservationRpcError (UNAVAILABLE for silence);
   * call watch again to resume. INVALID_ARGUMENT / NOT_FOUND come before anything is sent.
   *
   * @example
   *   for await (const obs of client.watch(["USDCOP"])) act(obs.values);
   */
  async *watch(symbols: readonly string[], options: WatchOptions = {}): AsyncGenerator<ObservationResult> {
    const heartbeatMs = options.heartbeatMs ?? 5000;
    if (!(heartbeatMs > 0 && Number.isFinite(heartbeatMs))) {
      throw new RangeError(`heartbeatMs must be a positive number of milliseconds, got ${heartbeatMs}`);
    }
    await this.ensureContract(this.deadline({}), options.signal);
    const stream = new AbortController();
    const stop = () => stream.abort();
    options.signal?.addEventListener("abort", stop, { once: true });
    let silent = false;
    let watchdog: ReturnType<typeof setTimeout> | undefined;
    const feed = () => {
      clearTimeout(watchdog);
      watchdog = setTimeout(() => {
        silent = true;
        stream.abort();
      }, 3 * heartbeatMs);
    };
    feed();
    try {
      const messages = this.rpc.watchObservations(
        { symbols: [...symbols], heartbeatIntervalMs: Math.round(heartbeatMs) },
        { signal: stream.signal },
      );
      for await (const message of messages) {
        feed();
        if (message.event.case === "observation") {
          yield this.resultFromProto(message.event.value);
        }
      }
    } catch (error) {
      if (silent) {
        throw new ObservationRpcError(Code.Unavailable, `the stream was silent for ${3 * heartbeatMs} ms`);
      }
      throw ObservationRpcError.fromError(error);
    } finally {
      clearTimeout(watchdog);
      options.signal?.removeEventListener("abort", stop);
      stream.abort();
    }
  }

  /** The server's feature contract (names, views, TTLs, id and hash). */
  async describe(options: CallOptions = {}): Promise<ObservationContract> {
    const deadline = this.deadline(options);
    return this.withRetries(deadline, options.signal, (timeoutMs, signal) =>
      this.rpc.describeObservation({}, { timeoutMs, signal }),
    );
  }

  /** Writes the symbol's live state (position in [-1, 1] at eventTime, default now). */
  async pushState(
    symbol: string,
    position: number,
    eventTime: Date = new Date(),
    options: CallOptions = {},
  ): Promise<PushStateResult> {
    const deadline = this.deadline(options);
    await this.ensureContract(deadline, options.signal);
    const request = create(PushStateRequestSchema, {
      symbol,
      position,
      eventTime: timestampFromDate(eventTime),
    });
    const reply = await this.withRetries(deadline, options.signal, (timeoutMs, signal) =>
      this.rpc.pushState(request, { timeoutMs, signal }),
    );
    return { applied: reply.applied, timeNormalized: reply.timeNormalized };
  }

  /** Closes the connection; calls made afterwards open a new one. */
  close(): void {
    this.sessions.abort();
  }

  private deadline(options: CallOptions): number {
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    if (!(timeoutMs > 0 && Number.isFinite(timeoutMs))) {
      throw new RangeError(`timeoutMs must be a positive number of milliseconds, got ${timeoutMs}`);
    }
    return performance.now() + timeoutMs;
  }

  private ensureContract(deadline: number, signal: AbortSignal | undefined): Promise<void> {
    if (this.contractCheck === null) {
      const check = this.withRetries(deadline, signal, (timeoutMs, attemptSignal) =>
        this.rpc.describeObservation({}, { timeoutMs, signal: attemptSignal }),
      ).then((contract) => {
        if (contract.contractHash !== this.expectedHash) {
          throw new ContractMismatchError(this.expectedHash, contract.contractHash, contract.contractId);
        }
      });
      // A failed check (no server yet, a timeout) is tried again on the next call; a mismatch
      // is too, so a client pointed at a server mid-upgrade recovers once the server does.
      this.contractCheck = check.catch((error: unknown) => {
        this.contractCheck = null;
        throw error;
      });
    }
    return this.contractCheck;
  }

  private async withRetries<T>(
    deadline: number,
    signal: AbortSignal | undefined,
    attempt: (timeoutMs: number, signal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    for (let number = 1; ; number++) {
      const remaining = deadline - performance.now();
      if (remaining <= 0) {
        throw new ObservationRpcError(Code.DeadlineExceeded, "the call's deadline passed");
      }
      try {
        return await attempt(Math.max(1, Math.floor(remaining)), signal);
      } catch (error) {
        const rpcError = ObservationRpcError.fromError(error);
        if (!RETRYABLE_CODES.has(rpcError.code) || number >= RETRY_MAX_ATTEMPTS) {
          throw rpcError;
        }
        const wait = backoffMs(number);
        if (performance.now() + wait >= deadline) {
          throw new ObservationRpcError(
            Code.DeadlineExceeded,
            `the call's deadline passed while retrying; last attempt: ${codeName(rpcError.code)}: ${rpcError.details}`,
          );
        }
        await sleep(wait);
      }
    }
  }

  private resultFromProto(observation: Observation): ObservationResult {
    if (observation.values.length !== N_FEATURES) {
      throw new MalformedObservationError(
        `observation of "${observation.symbol}" has ${observation.values.length} values; ` +
          `the contract has exactly ${N_FEATURES}`,
      );
    }
    if (observation.contractHash !== this.expectedHash) {
      throw new ContractMismatchError(this.expectedHash, observation.contractHash, observation.contractId);
    }
    return {
      symbol: observation.symbol,
      // The wire carries float32; JS numbers hold each one exactly, so this is bit-exact.
      values: Float32Array.from(observation.values),
      views: observation.views.map((status) => ({
        view: status.view,
        eventTime: toDate(status.eventTime),
        freshness: enumLabel(Freshness, status.freshness),
        source: enumLabel(ValueSource, status.source),
        fallbackReason: enumLabel(FallbackReason, status.fallbackReason),
      })),
      fromCache: observation.fromCache,
      servedAt: toDate(observation.servedAt),
      proto: observation,
    };
  }
}
