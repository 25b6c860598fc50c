// Command ably-standin is a small, in-memory stand-in for Ably's REST API,
// written for integration tests on machines that cannot reach Ably. It is NOT
// Ably and is not affiliated with Ably: it implements the subset of the REST
// wire protocol that this project uses (token requests, JWT and Basic auth,
// capabilities, channel publish and history, batch publish, idempotent
// publishing), Ably's SSE subscribe endpoint, plus a few unauthenticated
// /_standin/ endpoints for tests. Realtime (WebSocket) is not implemented.
// Only the standard library is used.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

const keyEnv = "ABLY_STANDIN_API_KEY"

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("ably-standin", flag.ContinueOnError)
	listen := fs.String("listen", "0.0.0.0:8080", "address to listen on (host:port; port 0 picks a free port)")
	addrFile := fs.String("addr-file", "", "if set, write the bound address (host:port) to this file once listening")
	window := fs.Duration("idempotency-window", 2*time.Minute, "how long an accepted message id is remembered per channel")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "ably-standin: an in-memory stand-in for Ably's REST API (not Ably).\n\n")
		fmt.Fprintf(fs.Output(), "Usage: %s=appId.keyId:secret ably-standin [flags]\n\n", keyEnv)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	logger := log.New(os.Stderr, "ably-standin ", log.LstdFlags|log.Lmicroseconds|log.LUTC)

	key, err := parseAPIKey(os.Getenv(keyEnv))
	if err != nil {
		logger.Printf("fatal: %s: %v", keyEnv, err)
		return 2
	}
	srv := NewServer(key, logger)
	srv.store.window = *window

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		logger.Printf("fatal: listen %s: %v", *listen, err)
		return 1
	}
	addr := ln.Addr().String()
	if *addrFile != "" {
		if err := writeAtomic(*addrFile, addr+"\n"); err != nil {
			logger.Printf("fatal: addr-file: %v", err)
			return 1
		}
	}
	hs := &http.Server{
		Handler:           srv,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          logger,
	}
	// Shut down cleanly on SIGINT/SIGTERM (Ctrl-C, `docker stop`).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Open SSE streams never finish by themselves: end them when shutdown starts.
	hs.RegisterOnShutdown(srv.closeStreams)
	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
	}()
	logger.Printf("listening on %s (key %s; a stand-in for Ably's REST API, not Ably; realtime WebSocket not supported)", addr, key.Name)
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		logger.Printf("fatal: serve: %v", err)
		return 1
	}
	<-shutdownDone // Serve returns as soon as Shutdown starts; let in-flight requests finish
	logger.Printf("stopped")
	return 0
}

// apiKey is the single key this server knows, in Ably's form appId.keyId:secret.
type apiKey struct {
	Name   string // appId.keyId
	Secret string
}

func parseAPIKey(s string) (apiKey, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return apiKey{}, errors.New("not set (want appId.keyId:secret)")
	}
	name, secret, ok := strings.Cut(s, ":")
	if !ok || secret == "" {
		return apiKey{}, errors.New("want appId.keyId:secret")
	}
	app, keyID, ok := strings.Cut(name, ".")
	if !ok || app == "" || keyID == "" || strings.ContainsAny(name, " /\n") {
		return apiKey{}, errors.New("key name must look like appId.keyId")
	}
	return apiKey{Name: name, Secret: secret}, nil
}

func writeAtomic(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".addr-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
