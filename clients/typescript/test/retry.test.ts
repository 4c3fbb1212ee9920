/** The retry policy and the status-code names, without a server. */
import assert from "node:assert/strict";
import { test } from "node:test";

import { Code, codeName } from "../src/errors.js";
import { RETRYABLE_CODES, backoffMs } from "../src/retry.js";

test("only UNAVAILABLE and RESOURCE_EXHAUSTED are retryable", () => {
  assert.deepEqual([...RETRYABLE_CODES].map(codeName).sort(), ["RESOURCE_EXHAUSTED", "UNAVAILABLE"]);
  for (const code of [Code.InvalidArgument, Code.NotFound, Code.DeadlineExceeded, Code.Internal]) {
    assert.equal(RETRYABLE_CODES.has(code), false, codeName(code));
  }
});

test("back-off doubles from 50 ms and is capped at 400 ms", () => {
  const atMost = (retry: number) => backoffMs(retry, () => 1);
  assert.deepEqual([1, 2, 3, 4, 5, 6].map(atMost), [50, 100, 200, 400, 400, 400]);
  assert.equal(backoffMs(3, () => 0), 0);
});

test("status codes have gRPC's names", () => {
  assert.equal(codeName(Code.InvalidArgument), "INVALID_ARGUMENT");
  assert.equal(codeName(Code.NotFound), "NOT_FOUND");
  assert.equal(codeName(Code.DeadlineExceeded), "DEADLINE_EXCEEDED");
  assert.equal(codeName(Code.ResourceExhausted), "RESOURCE_EXHAUSTED");
});
