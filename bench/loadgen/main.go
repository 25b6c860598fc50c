// Command loadgen posts prepared HTTP requests on a fixed schedule (open loop) and records when
// each one was sent: the load generator of the latency benchmark (bench/latency.py).
//
// The benchmark runs the system and the load on the same two cores, so the load should take as
// little of them as it can: against a bare handler at 1,000 requests/s for 10 s, the aiohttp
// client it replaces (signing each request as it went) took 5.5 CPU-seconds, this 2.8 (the
// signing, done beforehand, 0.5). The requests are prepared (and signed) by the caller
// beforehand; sending them is all this does.
//
//	loadgen --url URL --rate R --requests FILE --sent FILE
//
// FILE of requests: one JSON object a line, {"body": "<the raw body>", "headers": {...}}.
// FILE of sent: one line per request, in the same order, "<send time, ms since the epoch> <status>"
// (status 0 when no answer came: the error goes to stderr).
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

type request struct {
	Body    string            `json:"body"`
	Headers map[string]string `json:"headers"`
}

type outcome struct {
	sentMs float64
	status int
}

func readRequests(path string) ([]request, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var requests []request
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1<<20), 64<<20)
	for line := 1; scanner.Scan(); line++ {
		var r request
		if err := json.Unmarshal(scanner.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		requests = append(requests, r)
	}
	return requests, scanner.Err()
}

// send posts requests[n] at start + n/rate, whatever the answers of the earlier ones.
func send(client *http.Client, url string, rate float64, requests []request) []outcome {
	outcomes := make([]outcome, len(requests))
	var wg sync.WaitGroup
	var failures atomic.Int64
	start := time.Now()
	for n := range requests {
		if wait := time.Until(start.Add(time.Duration(float64(n) / rate * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func(n int) {
			defer wg.Done()
			r := requests[n]
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader([]byte(r.Body)))
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return
			}
			for name, value := range r.Headers {
				req.Header.Set(name, value)
			}
			outcomes[n].sentMs = float64(time.Now().UnixMicro()) / 1000
			resp, err := client.Do(req)
			if err != nil {
				if failures.Add(1) <= 5 { // the first few say why; the count says how many
					fmt.Fprintf(os.Stderr, "request %d: %v\n", n, err)
				}
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			outcomes[n].status = resp.StatusCode
		}(n)
	}
	wg.Wait()
	if n := failures.Load(); n > 5 {
		fmt.Fprintf(os.Stderr, "... %d requests failed in all\n", n)
	}
	return outcomes
}

func main() {
	url := flag.String("url", "", "where to POST")
	rate := flag.Float64("rate", 0, "requests per second")
	requestsPath := flag.String("requests", "", "the requests, one JSON object a line")
	sentPath := flag.String("sent", "", "where to write each request's send time and status")
	connections := flag.Int("connections", 256, "at most this many connections")
	flag.Parse()
	if *url == "" || *rate <= 0 || *requestsPath == "" || *sentPath == "" {
		fmt.Fprintln(os.Stderr, "usage: loadgen --url URL --rate R --requests FILE --sent FILE")
		os.Exit(2)
	}
	requests, err := readRequests(*requestsPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	client := &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			MaxConnsPerHost:     *connections,
			MaxIdleConnsPerHost: *connections,
			IdleConnTimeout:     90 * time.Second,
		},
	}
	outcomes := send(client, *url, *rate, requests)
	out, err := os.Create(*sentPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	w := bufio.NewWriter(out)
	for _, o := range outcomes {
		fmt.Fprintf(w, "%.3f %d\n", o.sentMs, o.status)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := out.Close(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
