package observation

// Tests against a real server (python -m server over a real redis-server holding a known
// observation), started by devstack.fixture_server: it passes USDCOP_TARGET,
// USDCOP_SERVER_PID and USDCOP_EXPECTED (what the Python client read) in the environment.

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net"
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

type expectedView struct {
	View           string `json:"view"`
	Source         string `json:"source"`
	Freshness      string `json:"freshness"`
	FallbackReason string `json:"fallback_reason"`
}

type expectedReading struct {
	Symbol    string         `json:"symbol"`
	ValuesHex string         `json:"values_hex"`
	Views     []expectedView `json:"views"`
}

func fixture(t *testing.T) (string, int, expectedReading) {
	t.Helper()
	target, pid, raw := os.Getenv("USDCOP_TARGET"), os.Getenv("USDCOP_SERVER_PID"), os.Getenv("USDCOP_EXPECTED")
	if target == "" || pid == "" || raw == "" {
		t.Fatal("USDCOP_TARGET, USDCOP_SERVER_PID, USDCOP_EXPECTED unset: run 'make test-go' (devstack.fixture_server)")
	}
	var expected expectedReading
	if err := json.Unmarshal([]byte(raw), &expected); err != nil {
		t.Fatalf("USDCOP_EXPECTED: %v", err)
	}
	serverPid, err := strconv.Atoi(pid)
	if err != nil {
		t.Fatalf("USDCOP_SERVER_PID: %v", err)
	}
	return target, serverPid, expected
}

func dial(t *testing.T, target string, options Options) *Client {
	t.Helper()
	client, err := Dial(target, options)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { client.Close() })
	return client
}

func valuesHex(values [NFeatures]float32) string {
	buf := make([]byte, 4*NFeatures)
	for i, v := range values {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return hex.EncodeToString(buf)
}

func TestValuesEqualThePythonClientsBitForBit(t *testing.T) {
	target, _, expected := fixture(t)
	client := dial(t, target, Options{})
	obs, err := client.Get(context.Background(), expected.Symbol)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	if got := valuesHex(obs.Values); got != expected.ValuesHex {
		t.Fatalf("values bytes\n got %s\nwant %s", got, expected.ValuesHex)
	}
	if len(obs.Views) != len(expected.Views) {
		t.Fatalf("%d views, want %d", len(obs.Views), len(expected.Views))
	}
	for i, view := range obs.Views {
		got := expectedView{view.View, view.Source, view.Freshness, view.FallbackReason}
		if got != expected.Views[i] {
			t.Errorf("view %d: got %+v, want %+v", i, got, expected.Views[i])
		}
		if age := time.Since(view.EventTime); age <= 0 || age > time.Hour {
			t.Errorf("view %s event time %v", view.View, view.EventTime)
		}
	}
}

func TestGetManyFailsOnlyTheSymbolsTheServerCannotAnswer(t *testing.T) {
	target, _, expected := fixture(t)
	results, err := dial(t, target, Options{}).GetMany(context.Background(), []string{"USDCOP", "EURUSD", "bad!"})
	if err != nil {
		t.Fatalf("GetMany: %v", err)
	}
	if len(results) != 3 || results[0].Symbol != "USDCOP" || results[1].Symbol != "EURUSD" || results[2].Symbol != "bad!" {
		t.Fatalf("results %+v", results)
	}
	if results[0].Err != nil || valuesHex(results[0].Observation.Values) != expected.ValuesHex {
		t.Fatalf("USDCOP: %v", results[0].Err)
	}
	if status.Code(results[1].Err) != codes.NotFound || status.Code(results[2].Err) != codes.InvalidArgument {
		t.Fatalf("errors %v / %v, want NOT_FOUND / INVALID_ARGUMENT", results[1].Err, results[2].Err)
	}
}

func TestDescribeServesThisClientsContract(t *testing.T) {
	target, _, _ := fixture(t)
	contract, err := dial(t, target, Options{}).Describe(context.Background())
	if err != nil {
		t.Fatalf("Describe: %v", err)
	}
	if contract.ContractHash != ContractHash || contract.ContractId != ContractID {
		t.Fatalf("contract %s %s, want %s %s", contract.ContractId, contract.ContractHash, ContractID, ContractHash)
	}
	for i, feature := range contract.Features {
		if feature.Name != FeatureNames[i] {
			t.Errorf("feature %d is %s, want %s", i, feature.Name, FeatureNames[i])
		}
	}
}

func TestErrorsCarryTheServersStatusCodes(t *testing.T) {
	target, _, _ := fixture(t)
	client := dial(t, target, Options{})
	for symbol, want := range map[string]codes.Code{
		"usd-cop!": codes.InvalidArgument,
		"":         codes.InvalidArgument,
		"EURUSD":   codes.NotFound,
	} {
		_, err := client.Get(context.Background(), symbol)
		if got := status.Code(err); got != want {
			t.Errorf("Get(%q): %v, want %v", symbol, err, want)
		}
	}
}

func TestAnotherContractIsRefused(t *testing.T) {
	target, _, _ := fixture(t)
	client := dial(t, target, Options{ExpectedHash: "0000"})
	_, err := client.Get(context.Background(), "USDCOP")
	var mismatch *ContractMismatchError
	if !errors.As(err, &mismatch) || mismatch.Served != ContractHash {
		t.Fatalf("got %v, want a ContractMismatchError", err)
	}
}

func TestTheDeadlineIsHonouredAgainstAStalledServer(t *testing.T) {
	target, pid, expected := fixture(t)
	client := dial(t, target, Options{Timeout: 300 * time.Millisecond})
	if _, err := client.Get(context.Background(), "USDCOP"); err != nil {
		t.Fatalf("warm-up Get: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatalf("SIGSTOP: %v", err)
	}
	began := time.Now()
	_, err := client.Get(context.Background(), "USDCOP")
	elapsed := time.Since(began)
	if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
		t.Fatalf("SIGCONT: %v", err)
	}
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("got %v, want DEADLINE_EXCEEDED", err)
	}
	if elapsed < 280*time.Millisecond || elapsed > 1500*time.Millisecond {
		t.Fatalf("gave up after %v, want ~300 ms", elapsed)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resumed := dial(t, target, Options{Timeout: 5 * time.Second})
	obs, err := resumed.Get(ctx, "USDCOP")
	if err != nil || valuesHex(obs.Values) != expected.ValuesHex {
		t.Fatalf("after resume: %v", err)
	}
}

func TestUnavailableIsRetriedWithinTheDeadline(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := listener.Addr().String()
	listener.Close()
	attempts := 0
	count := func(ctx context.Context, method string, req, reply interface{}, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		attempts++
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	client := dial(t, closed, Options{
		Timeout: 10 * time.Second, SkipContractCheck: true,
		DialOptions: []grpc.DialOption{grpc.WithUnaryInterceptor(count)},
	})
	began := time.Now()
	_, err = client.Get(context.Background(), "USDCOP")
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("got %v, want UNAVAILABLE", err)
	}
	if attempts != RetryMaxAttempts {
		t.Fatalf("%d attempts, want %d", attempts, RetryMaxAttempts)
	}
	// Four retries: the back-offs alone are drawn from [0,50]+[0,100]+[0,200]+[0,400] ms;
	// one attempt without retries returns in well under a millisecond on loopback.
	if elapsed := time.Since(began); elapsed > 5*time.Second {
		t.Fatalf("gave up after %v", elapsed)
	}
}

func TestRetryPolicy(t *testing.T) {
	for _, code := range []codes.Code{codes.Unavailable, codes.ResourceExhausted} {
		if !Retryable(code) {
			t.Errorf("%v is not retried", code)
		}
	}
	for _, code := range []codes.Code{codes.InvalidArgument, codes.NotFound, codes.DeadlineExceeded, codes.Internal} {
		if Retryable(code) {
			t.Errorf("%v is retried", code)
		}
	}
	for n, want := range map[int]time.Duration{1: 50, 2: 100, 3: 200, 4: 400, 9: 400} {
		for i := 0; i < 50; i++ {
			if wait := backoff(n); wait < 0 || wait > want*time.Millisecond {
				t.Fatalf("backoff(%d) = %v, want within [0, %d ms]", n, wait, want)
			}
		}
	}
}

func TestPushState(t *testing.T) {
	target, _, expected := fixture(t)
	client := dial(t, target, Options{})
	ctx := context.Background()
	if _, err := client.PushState(ctx, "USDCOP", 2, time.Now()); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("position 2: %v, want INVALID_ARGUMENT", err)
	}
	obs, err := client.Get(ctx, "USDCOP")
	if err != nil || valuesHex(obs.Values) != expected.ValuesHex {
		t.Fatalf("a refused push changed the values (%v)", err)
	}
	now := time.Now().Truncate(time.Microsecond)
	pushed, err := client.PushState(ctx, "USDCOP", 0.25, now)
	if err != nil || !pushed.Applied {
		t.Fatalf("push: %+v %v", pushed, err)
	}
	obs, err = client.Get(ctx, "USDCOP")
	if err != nil {
		t.Fatal(err)
	}
	if obs.Values[13] != 0.25 || obs.Values[14] != pushed.TimeNormalized {
		t.Fatalf("state served %v, pushed 0.25 / %v", obs.Values[13:], pushed.TimeNormalized)
	}
	if !obs.Views[2].EventTime.Equal(now) {
		t.Fatalf("state event time %v, pushed %v", obs.Views[2].EventTime, now)
	}
	older, err := client.PushState(ctx, "USDCOP", -1, now.Add(-time.Second))
	if err != nil || older.Applied {
		t.Fatalf("an older push: %+v %v", older, err)
	}
}
