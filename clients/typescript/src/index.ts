/**
 * TypeScript client of usdcop ObservationService (contract CTR-FEATURE-001).
 *
 * @example
 *   import { ObservationClient } from "@usdcop/observation-client";
 *   const client = new ObservationClient("127.0.0.1:50051");
 *   const { values, views } = await client.getObservation("USDCOP");
 */
export {
  DEFAULT_TARGET,
  DEFAULT_TIMEOUT_MS,
  ObservationClient,
  type CallOptions,
  type ObservationClientOptions,
  type ObservationResult,
  type PushStateResult,
  type SymbolFailure,
  type WatchOptions,
  type ViewInfo,
} from "./client.js";
export { CONTRACT_HASH, CONTRACT_ID, FEATURE_NAMES, N_FEATURES, VIEWS } from "./contract.js";
export {
  Code,
  ContractMismatchError,
  MalformedObservationError,
  ObservationClientError,
  ObservationRpcError,
  codeName,
} from "./errors.js";
export { RETRY_MAX_ATTEMPTS, RETRYABLE_CODES } from "./retry.js";
export * as pb from "./gen/usdcop/observation/v1/observation_pb.js";
