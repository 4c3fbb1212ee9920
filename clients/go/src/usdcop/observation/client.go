package observation

import (
	"context"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"time"

	"github.com/golang/protobuf/ptypes"
	"github.com/golang/protobuf/ptypes/timestamp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "usdcop/observation/v1"
)

// DefaultTimeout is the deadline of every call, retries included.
const DefaultTimeout = time.Second

// RetryMaxAttempts is the number of attempts per call (first try + 4 retries).
const RetryMaxAttempts = 5

const (
	initialBackoff = 50 * time.Millisecond
	maxBackoff     = 400 * time.Millisecond
)

// Options configure a Client; the zero value gives the defaults.
type Options struct {
	// Timeout is the deadline of every call, retries included (default DefaultTimeout).
	Timeout time.Duration
	// SkipContractCheck turns off the contract-hash check of the first call.
	SkipContractCheck bool
	// ExpectedHash is the contract hash to accept (default ContractHash).
	ExpectedHash string
	// DialOptions are added to the client's own (insecure transport, no blocking dial).
	DialOptions []grpc.DialOption
}

// ViewInfo says where one feature view's values came from.
type ViewInfo struct {
	View           string    // feature view name, e.g. "technical_features"
	EventTime      time.Time // event time of the values served for this view
	Freshness      string    // "fresh" or "expired"
	Source         string    // "online_store" or "compute_fallback"
	FallbackReason string    // "none" for the online store, else e.g. "view_expired"
}

// Observation is one symbol's 15 float32 values in contract order with their provenance.
type Observation struct {
	Symbol    string
	Values    [NFeatures]float32
	Views     []ViewInfo
	FromCache bool      // answered from the server's local TTL cache
	ServedAt  time.Time // when the server assembled the answer
	Proto     *pb.Observation
}

// PushStateResult is the answer of PushState.
type PushStateResult struct {
	Applied        bool    // false when the store already held a newer or equal event time
	TimeNormalized float32 // time_normalized as written (or as it would have been)
}

// ContractMismatchError: the server serves another feature contract than this client.
type ContractMismatchError struct {
	Expected, Served, ContractID string
}

func (e *ContractMismatchError) Error() string {
	return fmt.Sprintf("feature contract mismatch: client expects %s, server serves %s (%s); "+
		"upgrade the client or the server so both use the same contract", e.Expected, e.Served, e.ContractID)
}

// Client calls ObservationService over one gRPC connection. It is safe for concurrent use.
type Client struct {
	conn         *grpc.ClientConn
	rpc          pb.ObservationServiceClient
	timeout      time.Duration
	expectedHash string
	checkMu      sync.Mutex
	checked      bool
}

// Dial connects to target ("host:port", plaintext); the connection is made lazily.
func Dial(target string, options Options) (*Client, error) {
	timeout := options.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	if timeout < 0 {
		return nil, fmt.Errorf("timeout must be positive, got %v", timeout)
	}
	expected := options.ExpectedHash
	if expected == "" {
		expected = ContractHash
	}
	dialOptions := append([]grpc.DialOption{grpc.WithInsecure()}, options.DialOptions...)
	conn, err := grpc.Dial(target, dialOptions...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:         conn,
		rpc:          pb.NewObservationServiceClient(conn),
		timeout:      timeout,
		expectedHash: expected,
		checked:      options.SkipContractCheck,
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Get returns the latest observation of symbol.
func (c *Client) Get(ctx context.Context, symbol string) (*Observation, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if err := c.ensureContract(ctx); err != nil {
		return nil, err
	}
	var reply *pb.Observation
	err := retry(ctx, func() (err error) {
		reply, err = c.rpc.GetObservation(ctx, &pb.GetObservationRequest{Symbol: symbol})
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.fromProto(reply)
}

// SymbolResult is one symbol's answer in GetMany: an Observation, or Err carrying the status
// this symbol would have failed with in Get (status.Code(Err)).
type SymbolResult struct {
	Symbol      string
	Observation *Observation
	Err         error
}

// GetMany returns the latest observation of each symbol, in request order, in one call (one
// online-store round trip on the server); a symbol the server cannot answer gets an Err, the
// others are unaffected.
func (c *Client) GetMany(ctx context.Context, symbols []string) ([]SymbolResult, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if err := c.ensureContract(ctx); err != nil {
		return nil, err
	}
	var reply *pb.GetObservationsResponse
	err := retry(ctx, func() (err error) {
		reply, err = c.rpc.GetObservations(ctx, &pb.GetObservationsRequest{Symbols: symbols})
		return err
	})
	if err != nil {
		return nil, err
	}
	results := make([]SymbolResult, 0, len(reply.Results))
	for _, entry := range reply.Results {
		result := SymbolResult{Symbol: entry.Symbol}
		if observation := entry.GetObservation(); observation != nil {
			result.Observation, result.Err = c.fromProto(observation)
		} else if failure := entry.GetError(); failure != nil {
			result.Err = status.Error(codes.Code(failure.Code), failure.Message)
		} else {
			result.Err = status.Error(codes.Unknown, "no observation and no error in the answer")
		}
		results = append(results, result)
	}
	return results, nil
}

// Describe returns the server's feature contract.
func (c *Client) Describe(ctx context.Context) (*pb.ObservationContract, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	var reply *pb.ObservationContract
	err := retry(ctx, func() (err error) {
		reply, err = c.rpc.DescribeObservation(ctx, &pb.DescribeObservationRequest{})
		return err
	})
	return reply, err
}

// PushState writes symbol's live state: position in [-1, 1], effective at eventTime.
func (c *Client) PushState(ctx context.Context, symbol string, position float64, eventTime time.Time) (*PushStateResult, error) {
	ctx, cancel := c.withDeadline(ctx)
	defer cancel()
	if err := c.ensureContract(ctx); err != nil {
		return nil, err
	}
	when, err := ptypes.TimestampProto(eventTime)
	if err != nil {
		return nil, status.Errorf(codes.InvalidArgument, "event time: %v", err)
	}
	request := &pb.PushStateRequest{Symbol: symbol, Position: position, EventTime: when}
	var reply *pb.PushStateResponse
	err = retry(ctx, func() (err error) {
		reply, err = c.rpc.PushState(ctx, request)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &PushStateResult{Applied: reply.Applied, TimeNormalized: reply.TimeNormalized}, nil
}

func (c *Client) withDeadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= c.timeout {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

func (c *Client) ensureContract(ctx context.Context) error {
	c.checkMu.Lock()
	defer c.checkMu.Unlock()
	if c.checked {
		return nil
	}
	var contract *pb.ObservationContract
	err := retry(ctx, func() (err error) {
		contract, err = c.rpc.DescribeObservation(ctx, &pb.DescribeObservationRequest{})
		return err
	})
	if err != nil {
		return err // not marked checked: the next call tries again
	}
	if contract.ContractHash != c.expectedHash {
		return &ContractMismatchError{c.expectedHash, contract.ContractHash, contract.ContractId}
	}
	c.checked = true
	return nil
}

func (c *Client) fromProto(reply *pb.Observation) (*Observation, error) {
	if len(reply.Values) != NFeatures {
		return nil, fmt.Errorf("observation of %q has %d values; the contract has exactly %d",
			reply.Symbol, len(reply.Values), NFeatures)
	}
	if reply.ContractHash != c.expectedHash {
		return nil, &ContractMismatchError{c.expectedHash, reply.ContractHash, reply.ContractId}
	}
	out := &Observation{Symbol: reply.Symbol, FromCache: reply.FromCache, ServedAt: toTime(reply.ServedAt), Proto: reply}
	copy(out.Values[:], reply.Values)
	for _, v := range reply.Views {
		out.Views = append(out.Views, ViewInfo{
			View:           v.View,
			EventTime:      toTime(v.EventTime),
			Freshness:      label(pb.Freshness_name[int32(v.Freshness)], "FRESHNESS_"),
			Source:         label(pb.ValueSource_name[int32(v.Source)], "VALUE_SOURCE_"),
			FallbackReason: label(pb.FallbackReason_name[int32(v.FallbackReason)], "FALLBACK_REASON_"),
		})
	}
	return out, nil
}

func label(name, prefix string) string {
	return strings.ToLower(strings.TrimPrefix(name, prefix))
}

func toTime(ts *timestamp.Timestamp) time.Time {
	if ts == nil {
		return time.Time{}
	}
	t, err := ptypes.Timestamp(ts)
	if err != nil {
		return time.Time{}
	}
	return t
}

// Retryable reports whether a call that failed with code is retried: UNAVAILABLE and
// RESOURCE_EXHAUSTED mean the server answered and wrote nothing, so a retry is safe.
func Retryable(code codes.Code) bool {
	return code == codes.Unavailable || code == codes.ResourceExhausted
}

// backoff is the wait before retry number n (1-based): uniform in [0, min(400, 50*2^(n-1))] ms.
func backoff(n int) time.Duration {
	limit := initialBackoff << uint(n-1)
	if limit > maxBackoff || limit <= 0 {
		limit = maxBackoff
	}
	return time.Duration(rand.Int63n(int64(limit) + 1))
}

func retry(ctx context.Context, attempt func() error) error {
	for n := 1; ; n++ {
		err := attempt()
		if err == nil || !Retryable(status.Code(err)) || n >= RetryMaxAttempts {
			return err
		}
		wait := backoff(n)
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) <= wait {
			return status.Errorf(codes.DeadlineExceeded,
				"the call's deadline passed while retrying; last attempt: %v", err)
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-time.After(wait):
		}
	}
}
