/**
 * The TypeScript client against a real server (python -m server over a real redis-server
 * holding a known observation in Feast's layout), started by devstack.fixture_server, which
 * passes USDCOP_TARGET, USDCOP_SERVER_PID and USDCOP_EXPECTED (the Python client's reading).
 */
import assert from "node:assert/strict";
import { createServer } from "node:net";
import { after, describe, test } from "node:test";

import type { Interceptor } from "@connectrpc/connect";

import {
  CONTRACT_HASH,
  Code,
  ContractMismatchError,
  FEATURE_NAMES,
  ObservationClient,
  ObservationRpcError,
  RETRY_MAX_ATTEMPTS,
  type ObservationResult,
} from "../src/index.js";

function required(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set: run the tests through 'make test-clients' (devstack.fixture_server)`);
  }
  return value;
}

const TARGET = required("USDCOP_TARGET");
const SERVER_PID = Number(required("USDCOP_SERVER_PID"));
const EXPECTED = JSON.parse(required("USDCOP_EXPECTED")) as {
  symbol: string;
  values_hex: string;
  views: { view: string; source: string; freshness: string; fallback_reason: string }[];
};

function bytesHex(values: Float32Array): string {
  // Float32Array is in the platform's byte order; the expected bytes are little-endian.
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((value, index) => view.setFloat32(index * 4, value, true));
  return Buffer.from(view.buffer).toString("hex");
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("the call succeeded; an error was expected");
}

function countingCalls(method: string): { count: () => number; interceptor: Interceptor } {
  let calls = 0;
  return {
    count: () => calls,
    interceptor: (next) => async (request) => {
      if (request.method.name === method) calls++;
      return next(request);
    },
  };
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

describe("getObservation against the real server", () => {
  const client = new ObservationClient(TARGET);
  after(() => client.close());

  test("returns the Python client's 15 float32 values, bit for bit, in contract order", async () => {
    const result = await client.getObservation(EXPECTED.symbol);
    assert.ok(result.values instanceof Float32Array);
    assert.equal(result.values.length, 15);
    assert.equal(bytesHex(result.values), EXPECTED.values_hex);
    assert.equal(result.symbol, "USDCOP");
  });

  test("reports the same per-view provenance as the Python client", async () => {
    const result = await client.getObservation(EXPECTED.symbol);
    assert.deepEqual(
      result.views.map((v) => ({
        view: v.view,
        source: v.source,
        freshness: v.freshness,
        fallback_reason: v.fallbackReason,
      })),
      EXPECTED.views,
    );
    for (const view of result.views) {
      const ageMs = Date.now() - view.eventTime.getTime();
      assert.ok(ageMs > 0 && ageMs < 3_600_000, `${view.view} event time ${view.eventTime.toISOString()}`);
    }
    assert.ok(Math.abs(Date.now() - result.servedAt.getTime()) < 60_000);
  });

  test("getObservations answers each symbol, failing only the ones the server cannot answer", async () => {
    const results = await client.getObservations(["USDCOP", "EURUSD", "bad!", "USDCOP"]);
    assert.deepEqual(
      results.map((r) => r.symbol),
      ["USDCOP", "EURUSD", "bad!", "USDCOP"],
    );
    for (const index of [0, 3]) {
      const result = results[index];
      assert.ok(result !== undefined && "values" in result);
      assert.equal(bytesHex(result.values), EXPECTED.values_hex);
    }
    const [, unknown, malformed] = results;
    assert.ok(unknown !== undefined && "error" in unknown);
    assert.equal(unknown.error.code, Code.NotFound);
    assert.ok(malformed !== undefined && "error" in malformed);
    assert.equal(malformed.error.code, Code.InvalidArgument);
  });

  test("describe() serves the contract this client was generated with", async () => {
    const contract = await client.describe();
    assert.equal(contract.contractHash, CONTRACT_HASH);
    assert.equal(contract.contractId, "CTR-FEATURE-001");
    assert.deepEqual(
      contract.features.map((f) => f.name),
      [...FEATURE_NAMES],
    );
  });

  test("a malformed symbol is INVALID_ARGUMENT and is not retried", async () => {
    const counter = countingCalls("GetObservation");
    const checked = new ObservationClient(TARGET, { interceptors: [counter.interceptor] });
    try {
      const error = await rejection(checked.getObservation("usd-cop!"));
      assert.ok(error instanceof ObservationRpcError, String(error));
      assert.equal(error.code, Code.InvalidArgument);
      assert.equal(error.codeName, "INVALID_ARGUMENT");
      assert.match(error.details, /symbol/);
      assert.equal(counter.count(), 1);
    } finally {
      checked.close();
    }
  });

  test("a symbol the server does not serve is NOT_FOUND and is not retried", async () => {
    const counter = countingCalls("GetObservation");
    const checked = new ObservationClient(TARGET, { interceptors: [counter.interceptor] });
    try {
      const error = await rejection(checked.getObservation("EURUSD"));
      assert.ok(error instanceof ObservationRpcError, String(error));
      assert.equal(error.code, Code.NotFound);
      assert.match(error.details, /EURUSD/);
      assert.equal(counter.count(), 1);
    } finally {
      checked.close();
    }
  });

  test("a client built for another contract refuses to return values", async () => {
    const other = new ObservationClient(TARGET, { expectedHash: "0".repeat(64) });
    try {
      const error = await rejection(other.getObservation("USDCOP"));
      assert.ok(error instanceof ContractMismatchError, String(error));
      assert.equal(error.served, CONTRACT_HASH);
    } finally {
      other.close();
    }
  });
});

describe("deadlines and retries", () => {
  test("the deadline is honoured against a stalled server, which answers again once resumed", async () => {
    const client = new ObservationClient(TARGET);
    try {
      await client.getObservation("USDCOP"); // connected, contract checked
      process.kill(SERVER_PID, "SIGSTOP");
      let elapsedMs: number;
      let error: unknown;
      try {
        const began = performance.now();
        error = await rejection(client.getObservation("USDCOP", { timeoutMs: 300 }));
        elapsedMs = performance.now() - began;
      } finally {
        process.kill(SERVER_PID, "SIGCONT");
      }
      assert.ok(error instanceof ObservationRpcError, String(error));
      assert.equal(error.code, Code.DeadlineExceeded);
      assert.ok(elapsedMs >= 280 && elapsedMs < 1500, `gave up after ${elapsedMs.toFixed(0)} ms`);
      const result = await client.getObservation("USDCOP", { timeoutMs: 5000 });
      assert.equal(bytesHex(result.values), EXPECTED.values_hex);
    } finally {
      client.close();
    }
  });

  test("UNAVAILABLE is retried, up to the attempt limit", async () => {
    const port = await closedPort();
    const counter = countingCalls("GetObservation");
    const client = new ObservationClient(`127.0.0.1:${port}`, {
      timeoutMs: 10_000,
      checkContract: false,
      interceptors: [counter.interceptor],
    });
    try {
      const error = await rejection(client.getObservation("USDCOP"));
      assert.ok(error instanceof ObservationRpcError, String(error));
      assert.equal(error.code, Code.Unavailable);
      assert.equal(counter.count(), RETRY_MAX_ATTEMPTS);
    } finally {
      client.close();
    }
  });

  test("retries stop at the call's deadline", async () => {
    const port = await closedPort();
    const client = new ObservationClient(`127.0.0.1:${port}`, { timeoutMs: 60, checkContract: false });
    try {
      const began = performance.now();
      const error = await rejection(client.getObservation("USDCOP"));
      const elapsedMs = performance.now() - began;
      assert.ok(error instanceof ObservationRpcError, String(error));
      assert.ok(
        error.code === Code.DeadlineExceeded || error.code === Code.Unavailable,
        error.message,
      );
      assert.ok(elapsedMs < 1000, `gave up after ${elapsedMs.toFixed(0)} ms`);
    } finally {
      client.close();
    }
  });

  test("a deadline that is not a positive number is refused before any call", () => {
    assert.throws(() => new ObservationClient(TARGET, { timeoutMs: 0 }), RangeError);
    assert.throws(() => new ObservationClient(TARGET, { timeoutMs: Number.NaN }), RangeError);
  });
});

describe("pushState against the real server", () => {
  const client = new ObservationClient(TARGET);
  after(() => client.close());

  test("an out-of-range position is INVALID_ARGUMENT and changes nothing", async () => {
    const error = await rejection(client.pushState("USDCOP", 2));
    assert.ok(error instanceof ObservationRpcError, String(error));
    assert.equal(error.code, Code.InvalidArgument);
    const result = await client.getObservation("USDCOP");
    assert.equal(bytesHex(result.values), EXPECTED.values_hex);
  });

  test("a pushed state is served at once; an older push is not applied", async () => {
    const now = new Date();
    const pushed = await client.pushState("USDCOP", -0.5, now);
    assert.equal(pushed.applied, true);
    assert.ok(pushed.timeNormalized >= 0 && pushed.timeNormalized <= 1);
    const result = await client.getObservation("USDCOP");
    assert.equal(result.values[13], -0.5);
    assert.equal(result.values[14], Math.fround(pushed.timeNormalized));
    const state = result.views.find((v) => v.view === "state_features");
    assert.equal(state?.eventTime.getTime(), now.getTime());
    const older = await client.pushState("USDCOP", 0.75, new Date(now.getTime() - 1000));
    assert.equal(older.applied, false);
    assert.equal((await client.getObservation("USDCOP")).values[13], -0.5);
  });
});

describe("watch against the real server", () => {
  const client = new ObservationClient(TARGET);
  after(() => client.close());

  test("yields the current observation, then the change a push makes", async () => {
    const seen: ObservationResult[] = [];
    let pushed = false;
    for await (const result of client.watch(["USDCOP"], { heartbeatMs: 200 })) {
      seen.push(result);
      if (!pushed) {
        pushed = true;
        assert.equal(result.values.length, 15);
        const push = await client.pushState("USDCOP", 0.125, new Date());
        assert.equal(push.applied, true);
      } else if (result.values[13] === 0.125) {
        break;
      }
      assert.ok(seen.length < 10, "the pushed state never arrived");
    }
    assert.equal(seen.at(-1)?.values[13], 0.125);
    assert.ok(seen.length >= 2);
  });

  test("an unknown symbol ends the stream with NOT_FOUND", async () => {
    const error = await rejection(
      (async () => {
        for await (const _ of client.watch(["EURUSD"])) {
          assert.fail("no observation expected");
        }
      })(),
    );
    assert.ok(error instanceof ObservationRpcError, String(error));
    assert.equal(error.code, Code.NotFound);
  });
});
