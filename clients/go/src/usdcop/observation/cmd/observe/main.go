// Command observe prints a symbol's observation, feature by feature, with its provenance.
//
//	go run usdcop/observation/cmd/observe -target 127.0.0.1:50051 USDCOP
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"usdcop/observation"
)

func main() {
	target := flag.String("target", "127.0.0.1:50051", "server address host:port")
	timeout := flag.Duration("timeout", time.Second, "deadline of the call, retries included")
	flag.Parse()
	symbol := "USDCOP"
	if flag.NArg() > 0 {
		symbol = flag.Arg(0)
	}
	client, err := observation.Dial(*target, observation.Options{Timeout: *timeout})
	if err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		os.Exit(1)
	}
	defer client.Close()
	obs, err := client.Get(context.Background(), symbol)
	if err != nil {
		fmt.Fprintln(os.Stderr, "observe:", err)
		os.Exit(1)
	}
	for i, name := range observation.FeatureNames {
		fmt.Printf("%-18s %14.6g\n", name, obs.Values[i])
	}
	for _, view := range obs.Views {
		fmt.Printf("%-18s %s %s %s (fallback: %s)\n", view.View, view.EventTime.Format(time.RFC3339),
			view.Freshness, view.Source, view.FallbackReason)
	}
}
