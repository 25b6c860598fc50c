package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSendKeepsTheScheduleAndPassesBodiesAndHeaders(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		got[string(body)] = r.Header.Get("X-GHL-Signature")
		mu.Unlock()
		if string(body) == "refused" {
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	defer server.Close()
	requests := []request{
		{Body: "a", Headers: map[string]string{"X-GHL-Signature": "sa"}},
		{Body: "b", Headers: map[string]string{"X-GHL-Signature": "sb"}},
		{Body: "refused", Headers: map[string]string{"X-GHL-Signature": "sr"}},
		{Body: "d", Headers: map[string]string{"X-GHL-Signature": "sd"}},
	}
	start := float64(time.Now().UnixMicro()) / 1000
	outcomes := send(server.Client(), server.URL, 20, requests) // one each 50 ms
	want := map[string]string{"a": "sa", "b": "sb", "refused": "sr", "d": "sd"}
	for body, signature := range want {
		if got[body] != signature {
			t.Errorf("body %q: signature %q, want %q", body, got[body], signature)
		}
	}
	for n, o := range outcomes {
		wantStatus := http.StatusOK
		if requests[n].Body == "refused" {
			wantStatus = http.StatusUnauthorized
		}
		if o.status != wantStatus {
			t.Errorf("request %d: status %d, want %d", n, o.status, wantStatus)
		}
		// Never early (open loop: on schedule whatever the answers); late only by scheduling.
		due := start + float64(n)*50
		if o.sentMs < due-1 || o.sentMs > due+500 {
			t.Errorf("request %d sent %.1f ms after the start, due at %d", n, o.sentMs-start, n*50)
		}
	}
}

func TestSendRecordsNoStatusWhenNothingAnswers(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	url := server.URL
	server.Close()
	outcomes := send(&http.Client{Timeout: time.Second}, url, 100, []request{{Body: "x"}})
	if outcomes[0].status != 0 || outcomes[0].sentMs == 0 {
		t.Errorf("got %+v, want a send time and status 0", outcomes[0])
	}
}

func TestReadRequestsSaysWhichLineIsWrong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "requests")
	if err := os.WriteFile(path, []byte("{\"body\": \"x\"}\nnot json\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readRequests(path); err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Errorf("got %v, want an error naming line 2", err)
	}
}
