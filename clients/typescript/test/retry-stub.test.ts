/**
 * Retries on RESOURCE_EXHAUSTED (what the server answers at its concurrency bound), against a
 * stub gRPC server in this process: the real server has no switch to produce that status on
 * demand. The stub answers with the status N times, then with an observation.
 */
import assert from "node:assert/strict";
import { createServer, type Http2Server } from "node:http2";
import { after, before, test } from "node:test";

import { create } from "@bufbuild/protobuf";
import { Code, ConnectError, type ConnectRouter } from "@connectrpc/connect";
import { connectNodeAdapter } from "@connectrpc/connect-node";

import { CONTRACT_HASH, ObservationClient, ObservationRpcError } from "../src/index.js";
import { ObservationSchema, ObservationService } from "../src/gen/usdcop/observation/v1/observation_pb.js";

let failuresLeft = 0;
let failWith = Code.ResourceExhausted;
let calls = 0;
let server: Http2Server;
let target = "";

function routes(router: ConnectRouter): void {
  router.service(ObservationService, {
    getObservation(request) {
      calls++;
      if (failuresLeft > 0) {
        failuresLeft--;
        throw new ConnectError("busy", failWith);
      }
      return create(ObservationSchema, {
        symbol: request.symbol,
        values: Array.from({ length: 15 }, (_, i) => i / 7),
        contractId: "CTR-FEATURE-001",
        contractHash: CONTRACT_HASH,
      });
    },
  });
}

before(async () => {
  server = createServer(connectNodeAdapter({ routes }));
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === "object");
  target = `127.0.0.1:${address.port}`;
});

after(() => new Promise<void>((resolve) => server.close(() => resolve())));

test("RESOURCE_EXHAUSTED is retried until the server answers", async () => {
  failuresLeft = 2;
  failWith = Code.ResourceExhausted;
  calls = 0;
  const client = new ObservationClient(target, { checkContract: false, timeoutMs: 5000 });
  try {
    const result = await client.getObservation("USDCOP");
    assert.equal(calls, 3);
    assert.equal(result.values[7], Math.fround(7 / 7));
    assert.equal(result.values[3], Math.fround(3 / 7));
  } finally {
    client.close();
  }
});

test("INTERNAL is not retried", async () => {
  failuresLeft = 2;
  failWith = Code.Internal;
  calls = 0;
  const client = new ObservationClient(target, { checkContract: false, timeoutMs: 5000 });
  try {
    await assert.rejects(client.getObservation("USDCOP"), (error: unknown) => {
      assert.ok(error instanceof ObservationRpcError);
      assert.equal(error.code, Code.Internal);
      return true;
    });
    assert.equal(calls, 1);
  } finally {
    client.close();
  }
});
