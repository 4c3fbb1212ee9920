/**
 * Errors thrown by the observation client.
 *
 *     ObservationClientError         base of every error this package throws
 *     ├── ObservationRpcError        the call failed with a gRPC status (`.code`, `.codeName`, `.details`)
 *     ├── ContractMismatchError      the server serves another feature contract than this client
 *     └── MalformedObservationError  the server's answer breaks the contract (e.g. not 15 values)
 */
import { Code, ConnectError } from "@connectrpc/connect";

export { Code };

/** Base class of every error thrown by this package. */
export class ObservationClientError extends Error {
  override name = "ObservationClientError";
}

/**
 * A call failed with a gRPC status, after the client's retries and within its deadline.
 *
 * @example
 *   try { await client.getObservation("??"); }
 *   catch (e) { if (e instanceof ObservationRpcError && e.code === Code.InvalidArgument) ... }
 */
export class ObservationRpcError extends ObservationClientError {
  override name = "ObservationRpcError";

  constructor(
    /** The gRPC status code (numbering of google.rpc.Code, e.g. 3 = INVALID_ARGUMENT). */
    readonly code: Code,
    /** The server's (or the transport's) message. */
    readonly details: string,
  ) {
    super(`${codeName(code)}: ${details}`);
  }

  /** The status code's gRPC name, e.g. "NOT_FOUND". */
  get codeName(): string {
    return codeName(this.code);
  }

  static fromError(error: unknown): ObservationRpcError {
    const connectError = ConnectError.from(error);
    return new ObservationRpcError(connectError.code, connectError.rawMessage || "no details");
  }
}

/**
 * The server's contract hash differs from the one this client was built for: feeding an agent
 * features in another order or of other views corrupts its decisions, so no values are returned.
 */
export class ContractMismatchError extends ObservationClientError {
  override name = "ContractMismatchError";

  constructor(
    /** The hash this client expects (CONTRACT_HASH unless overridden). */
    readonly expected: string,
    /** The hash the server reported. */
    readonly served: string,
    contractId = "",
  ) {
    const label = contractId ? ` (${contractId})` : "";
    super(
      `feature contract mismatch: client expects ${expected}, server serves ${served}${label}; ` +
        "upgrade the client or the server so both use the same contract",
    );
  }
}

/** The server's answer does not have the contract's shape (e.g. not exactly 15 values). */
export class MalformedObservationError extends ObservationClientError {
  override name = "MalformedObservationError";
}

/** gRPC's name of a status code: Code.InvalidArgument -> "INVALID_ARGUMENT". */
export function codeName(code: Code): string {
  const camel = Code[code] ?? `CODE_${code}`;
  return camel.replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase();
}
