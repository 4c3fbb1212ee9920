// Package observation is the Go client of usdcop ObservationService: the 15 float32
// features of contract CTR-FEATURE-001 of a traded symbol, with their provenance.
//
// What enters: a target ("host:port") and Options (deadline, contract check). What leaves:
// *Observation ([15]float32 in contract order, per-view provenance), PushStateResult, and
// errors that carry a gRPC status (status.Code(err)) or are a *ContractMismatchError.
//
// Every call has one deadline (Options.Timeout, default 1 s, unless the caller's context has
// an earlier one) that covers its retries; only UNAVAILABLE and RESOURCE_EXHAUSTED are
// retried. The first call checks the server's contract hash (DescribeObservation) against
// ContractHash, the value the Python and TypeScript clients use too.
//
//	client, err := observation.Dial("127.0.0.1:50051", observation.Options{})
//	if err != nil { ... }
//	defer client.Close()
//	obs, err := client.Get(ctx, "USDCOP")
//	obs.Values          // [15]float32, contract order (FeatureNames)
//	obs.Views[0].Source // "online_store" or "compute_fallback"
//
// The generated code lives in usdcop/observation/v1 (buf generate, see proto/buf.gen.yaml).
package observation
