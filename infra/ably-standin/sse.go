package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// GET /sse (and /event-stream with Accept: text/event-stream): Ably's SSE
// subscribe API (https://ably.com/docs/api/sse), message events only.
//
// Each event's id is the message's global sequence number in this process
// (decimal, increasing over all channels, never reused, not even after
// DELETE /_standin/messages), so lastEvent=N resumes with every message on
// the stream's channels accepted after N, whichever channel N was on.

const (
	maxSSERewind    = 100
	sseRewindWindow = 2 * time.Minute  // Ably: rewind reaches back at most two minutes
	sseWriteTimeout = 30 * time.Second // a client that stops reading is cut off
)

type sseParams struct {
	channels  []string
	after     int64 // resume after this global sequence number; -1 = not resuming
	rewind    int
	enveloped bool
}

func parseSSEParams(r *http.Request) (*sseParams, *ablyError) {
	q := r.URL.Query()
	list := q.Get("channels")
	if list == "" {
		list = q.Get("channel")
	}
	if list == "" {
		return nil, newErr(400, 40000, "channels is required (channel names separated by commas, or by separator)")
	}
	sep := ","
	if v := q.Get("separator"); v != "" {
		sep = v
	}
	p := &sseParams{after: -1, enveloped: true}
	seen := map[string]bool{}
	for _, c := range strings.Split(list, sep) {
		if e := validChannelName(c); e != nil {
			return nil, e
		}
		if !seen[c] {
			seen[c] = true
			p.channels = append(p.channels, c)
		}
	}
	if len(p.channels) > maxBatchChannels {
		return nil, newErr(400, 90010, "subscription to %d channels; at most %d per stream", len(p.channels), maxBatchChannels)
	}
	if v := q.Get("rewind"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 || n > maxSSERewind {
			return nil, newErr(400, 40003, "rewind must be an integer between 0 and %d", maxSSERewind)
		}
		p.rewind = n
	}
	// EventSource sends Last-Event-ID when it reconnects by itself.
	last := q.Get("lastEvent")
	if last == "" {
		last = r.Header.Get("Last-Event-ID")
	}
	if last != "" {
		n, err := strconv.ParseInt(last, 10, 64)
		if err != nil || n < 0 {
			return nil, newErr(400, 40003, "lastEvent %q is not an event id from ably-standin", last)
		}
		p.after = n
	}
	if v := q.Get("enveloped"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, newErr(400, 40003, "enveloped must be true or false")
		}
		p.enveloped = b
	}
	return p, nil
}

// authenticateSSE takes credentials from the query string first, since a
// browser's EventSource cannot set an Authorization header.
func (s *Server) authenticateSSE(r *http.Request) (*principal, *ablyError) {
	q := r.URL.Query()
	switch {
	case q.Get("accessToken") != "":
		return s.authToken(r, q.Get("accessToken"))
	case q.Get("key") != "":
		return s.authKey(r, q.Get("key"))
	case r.Header.Get("Authorization") == "" && q.Get("access_token") == "":
		return nil, newErr(401, 40101, "no credentials: use ?accessToken= (token) or ?key= (API key)")
	}
	return s.authenticate(r)
}

func (s *Server) handleSSE(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("v") == "" {
		writeError(w, newErr(400, 40000, "v (the API version, e.g. v=1.2) is required"))
		return
	}
	p, e := s.authenticateSSE(r)
	if e != nil {
		writeError(w, e)
		return
	}
	sp, e := parseSSEParams(r)
	if e != nil {
		writeError(w, e)
		return
	}
	for _, c := range sp.channels {
		if !p.capability.allows(c, "subscribe") {
			writeError(w, capabilityDenied(c, "subscribe"))
			return
		}
	}

	sub, backlog := s.store.subscribe(sp.channels, sp.after, sp.rewind, s.sseBuffer, sseRewindWindow)
	defer s.store.unsubscribe(sub)
	end, events := "client-closed", 0
	defer func() {
		setLogExtra(r, fmt.Sprintf("channels=%q events=%d end=%s", strings.Join(sp.channels, ","), events, end))
	}()

	rc := http.NewResponseController(w)
	defer rc.SetWriteDeadline(time.Time{}) // the connection may be reused for another request
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	send := func(chunk string) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(sseWriteTimeout))
		if _, err := io.WriteString(w, chunk); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	sendMessage := func(m *storedMessage) bool {
		events++
		return send(sseMessageEvent(m, sp.enveloped))
	}
	fail := func(why string, e *ablyError) {
		end = why
		send(sseErrorEvent(e))
	}
	if rc.Flush() != nil { // headers out now, so the client sees the stream open
		end = "write-failed"
		return
	}
	for _, m := range backlog {
		if !sendMessage(m) {
			end = "write-failed"
			return
		}
	}

	var expiry <-chan time.Time
	if !p.expires.IsZero() {
		t := time.NewTimer(p.expires.Sub(s.now()))
		defer t.Stop()
		expiry = t.C
	}
	tokenExpired := newErr(401, 40142, "Token expired")
	keepalive := time.NewTicker(s.sseKeepalive)
	defer keepalive.Stop()
	for {
		select {
		case m := <-sub.ch:
			if !sendMessage(m) {
				end = "write-failed"
				return
			}
		case <-sub.overflow:
			// Deliver what was queued, then end the stream: the client can
			// resume from the last id it got (EventSource does so by itself).
			for len(sub.ch) > 0 {
				if !sendMessage(<-sub.ch) {
					end = "write-failed"
					return
				}
			}
			fail("too-slow", newErr(500, 80020, "Continuity loss: more than %d messages queued for this stream (client too slow); resume with lastEvent", s.sseBuffer))
			return
		case <-expiry:
			fail("token-expired", tokenExpired)
			return
		case <-keepalive.C:
			// Also checked here because tests move the server's clock, not the timer's.
			if !p.expires.IsZero() && !s.now().Before(p.expires) {
				fail("token-expired", tokenExpired)
				return
			}
			if !send(":keepalive\n\n") {
				end = "write-failed"
				return
			}
		case <-r.Context().Done():
			return
		case <-s.closing:
			end = "server-shutdown"
			return
		}
	}
}

// closeStreams ends every open SSE stream, so that http.Server.Shutdown does
// not wait for them.
func (s *Server) closeStreams() { s.closeOnce.Do(func() { close(s.closing) }) }

func sseMessageEvent(m *storedMessage, enveloped bool) string {
	var data string
	switch {
	case enveloped:
		data = compactJSON(m.item(true))
	case len(m.Data) > 0 && m.Data[0] == '"':
		_ = json.Unmarshal(m.Data, &data) // a string payload is sent as the string itself
	case len(m.Data) > 0:
		var buf bytes.Buffer
		if json.Compact(&buf, m.Data) == nil {
			data = buf.String()
		}
	}
	return "id: " + strconv.FormatInt(m.gseq, 10) + "\nevent: message\n" + sseData(data)
}

func sseErrorEvent(e *ablyError) string {
	return "event: error\n" + sseData(compactJSON(e))
}

// sseData writes data as "data:" lines (one per line of it) and ends the event.
func sseData(data string) string {
	data = strings.ReplaceAll(strings.ReplaceAll(data, "\r\n", "\n"), "\r", "\n")
	var b strings.Builder
	for _, line := range strings.Split(data, "\n") {
		b.WriteString("data: " + line + "\n")
	}
	return b.String() + "\n"
}

func compactJSON(v any) string {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
	return strings.TrimSuffix(buf.String(), "\n")
}
