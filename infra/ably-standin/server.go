package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the HTTP handler: routing, auth, and the REST endpoints.
type Server struct {
	key    apiKey
	logger *log.Logger
	store  *Store
	now    func() time.Time

	nonceMu sync.Mutex
	nonces  map[string]int64 // keyName+"\n"+nonce -> unix ms first seen

	sseKeepalive time.Duration // interval of ":keepalive" comments on SSE streams
	sseBuffer    int           // messages queued per SSE stream before it is closed as too slow
	closing      chan struct{} // closed by closeStreams to end every SSE stream
	closeOnce    sync.Once
}

func NewServer(key apiKey, logger *log.Logger) *Server {
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	s := &Server{key: key, logger: logger, now: time.Now, nonces: map[string]int64{},
		sseKeepalive: 15 * time.Second, sseBuffer: 1000, closing: make(chan struct{})}
	s.store = NewStore(func() time.Time { return s.now() })
	return s
}

const (
	maxBodyBytes       = 2 << 20 // Ably: request body < 2 MiB
	maxMessageBytes    = 64 << 10
	maxBatchChannels   = 100
	maxBatchMessages   = 1000
	defaultHistory     = 100
	maxHistory         = 1000
	tokenRequestWindow = 2 * time.Minute
	defaultTokenTTL    = time.Hour
	maxTokenTTL        = 24 * time.Hour
)

// ---- errors in Ably's shape ----

type ablyError struct {
	Code       int    `json:"code"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"message"`
	Href       string `json:"href"`
}

func (e *ablyError) Error() string { return fmt.Sprintf("%d: %s", e.Code, e.Message) }

func newErr(status, code int, format string, args ...any) *ablyError {
	return &ablyError{Code: code, StatusCode: status, Message: fmt.Sprintf(format, args...),
		Href: fmt.Sprintf("https://help.ably.io/error/%d", code)}
}

func setErrorHeaders(w http.ResponseWriter, e *ablyError) {
	msg := strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e {
			return ' '
		}
		return r
	}, e.Message)
	// Ably's spelling; set directly so Go does not canonicalise it to "Errorcode".
	w.Header()["X-Ably-ErrorCode"] = []string{strconv.Itoa(e.Code)}
	w.Header()["X-Ably-ErrorMessage"] = []string{msg}
}

func writeError(w http.ResponseWriter, e *ablyError) {
	setErrorHeaders(w, e)
	writeJSON(w, e.StatusCode, map[string]any{"error": e})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		http.Error(w, "ably-standin: encoding response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(buf.Len()))
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// ---- per-request logging ----

type reqInfo struct{ who, extra string }

type ctxKey struct{}

func setWho(r *http.Request, who string) {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		ri.who = who
	}
}

// setLogExtra adds text to the end of the request's log line (SSE: channels, why it ended).
func setLogExtra(r *http.Request, extra string) {
	if ri, ok := r.Context().Value(ctxKey{}).(*reqInfo); ok {
		ri.extra = " " + extra
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += n
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ServeHTTP logs one line per request (method, path without query string,
// status, duration, caller identity; never secrets or tokens) and routes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	ri := &reqInfo{who: "-"}
	r = r.WithContext(context.WithValue(r.Context(), ctxKey{}, ri))
	sw := &statusWriter{ResponseWriter: w}
	w.Header().Set("Server", "ably-standin")
	// Browsers call requestToken and /sse from the dashboard's origin; like Ably, allow any.
	w.Header().Set("Access-Control-Allow-Origin", "*")

	dropped := s.maybeDrop(sw, r)
	if !dropped {
		s.route(sw, r)
	}
	status := strconv.Itoa(sw.status)
	if dropped {
		status = "dropped"
	} else if sw.status == 0 {
		status = "200"
	}
	// r.URL.EscapedPath() never carries the query string, where tokens may be.
	s.logger.Printf("%s %s %s %s %s auth=%s%s", r.RemoteAddr, r.Method, r.URL.EscapedPath(), status,
		time.Since(start).Round(time.Microsecond), ri.who, ri.extra)
}

// maybeDrop closes the connection without answering while a "drop connections"
// fault is active. The stand-in's own endpoints and /healthz are never dropped.
func (s *Server) maybeDrop(w http.ResponseWriter, r *http.Request) bool {
	p := r.URL.EscapedPath()
	if p == "/healthz" || strings.HasPrefix(p, "/_standin/") {
		return false
	}
	if !s.store.dropActive() {
		return false
	}
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// HTTP/2 connections cannot be hijacked; abort the stream instead.
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
	return true
}

func (s *Server) route(w http.ResponseWriter, r *http.Request) {
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	seg := func(i int) string {
		v, err := url.PathUnescape(segs[i])
		if err != nil {
			return "\x00invalid"
		}
		return v
	}
	switch {
	case r.Method == "OPTIONS":
		// CORS preflight, e.g. for a JSON TokenRequest POSTed from another origin.
		w.Header().Set("Access-Control-Allow-Methods", "POST, GET, OPTIONS")
		w.Header().Set("Access-Control-Allow-Headers", "Content-Type, Authorization")
		w.Header().Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
	case len(segs) == 1 && segs[0] == "time":
		s.onlyMethods(w, r, s.handleTime, "GET")
	case len(segs) == 1 && segs[0] == "healthz":
		s.onlyMethods(w, r, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, "ok")
		}, "GET", "HEAD")
	case len(segs) == 1 && segs[0] == "messages":
		s.onlyMethods(w, r, s.handleBatchPublish, "POST")
	case len(segs) == 1 && segs[0] == "sse":
		s.onlyMethods(w, r, s.handleSSE, "GET")
	case len(segs) == 1 && segs[0] == "event-stream":
		// Ably answers SSE here when asked for it; its plain JSON stream is not implemented.
		if !strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			writeError(w, newErr(400, 40000, "ably-standin serves /event-stream only as SSE: send Accept: text/event-stream, or use /sse"))
			return
		}
		s.onlyMethods(w, r, s.handleSSE, "GET")
	case len(segs) == 3 && segs[0] == "keys" && segs[2] == "requestToken":
		keyName := seg(1)
		s.onlyMethods(w, r, func(w http.ResponseWriter, r *http.Request) { s.handleRequestToken(w, r, keyName) }, "POST")
	case len(segs) == 3 && segs[0] == "channels" && (segs[2] == "messages" || segs[2] == "history"):
		channel := seg(1)
		switch {
		case r.Method == "POST" && segs[2] == "messages":
			s.handlePublish(w, r, channel)
		case r.Method == "GET":
			s.handleHistory(w, r, channel, segs[2])
		default:
			writeError(w, newErr(405, 40500, "method %s not allowed on %s", r.Method, r.URL.EscapedPath()))
		}
	case len(segs) == 2 && segs[0] == "_standin":
		s.routeControl(w, r, segs[1])
	default:
		writeError(w, newErr(404, 40400, "ably-standin does not implement %s %s", r.Method, r.URL.EscapedPath()))
	}
}

func (s *Server) onlyMethods(w http.ResponseWriter, r *http.Request, h http.HandlerFunc, methods ...string) {
	for _, m := range methods {
		if r.Method == m {
			h(w, r)
			return
		}
	}
	w.Header().Set("Allow", strings.Join(methods, ", "))
	writeError(w, newErr(405, 40500, "method %s not allowed on %s", r.Method, r.URL.EscapedPath()))
}

func (s *Server) handleTime(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, []int64{s.now().UnixMilli()})
}

// readJSONBody enforces the JSON-only rule and the 2 MiB limit.
func readJSONBody(r *http.Request) ([]byte, *ablyError) {
	ct := r.Header.Get("Content-Type")
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			hint := "send Content-Type: application/json"
			if strings.Contains(ct, "msgpack") {
				hint = "ably-standin only speaks JSON; construct the client with use_binary_protocol=False (ably-js: useBinaryProtocol: false)"
			}
			return nil, newErr(http.StatusUnsupportedMediaType, 40004, "unsupported Content-Type %q: %s", ct, hint)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return nil, newErr(400, 40000, "reading request body: %v", err)
	}
	if len(body) > maxBodyBytes {
		return nil, newErr(413, 40009, "request body exceeds %d bytes", maxBodyBytes)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, newErr(400, 40001, "empty request body")
	}
	if !json.Valid(body) {
		return nil, newErr(400, 40001, "request body is not valid JSON")
	}
	return body, nil
}

// validChannelName applies Ably's documented rules (non-empty, no leading ':'
// or '[', no newlines). Channel qualifiers like "[?rewind=1]name" and
// metachannels are not supported by the stand-in and are refused too.
func validChannelName(name string) *ablyError {
	switch {
	case name == "":
		return newErr(400, 40010, "invalid channel name: empty")
	case name == "\x00invalid":
		return newErr(400, 40010, "invalid channel name: bad URL escaping")
	case strings.HasPrefix(name, ":") || strings.HasPrefix(name, "["):
		return newErr(400, 40010, "invalid channel name %q: cannot start with ':' or '[' (qualifiers and metachannels are not supported by ably-standin)", name)
	case strings.ContainsAny(name, "\r\n"):
		return newErr(400, 40010, "invalid channel name: contains a newline")
	}
	return nil
}

// ---- publish ----

type publishResponse struct {
	Channel   string   `json:"channel"`
	MessageID string   `json:"messageId"`
	Serials   []string `json:"serials"`
}

func (s *Server) handlePublish(w http.ResponseWriter, r *http.Request, channel string) {
	if e, retryAfter := s.store.takeFault(); e != nil {
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		setWho(r, "fault-injected")
		writeError(w, e)
		return
	}
	p, e := s.authenticate(r)
	if e != nil {
		s.store.countRefused(1)
		writeError(w, e)
		return
	}
	res, e := s.publishTo(p, channel, r)
	if e != nil {
		s.store.countRefused(1)
		writeError(w, e)
		return
	}
	writeJSON(w, 201, res)
}

func (s *Server) publishTo(p *principal, channel string, r *http.Request) (*publishResponse, *ablyError) {
	if e := validChannelName(channel); e != nil {
		return nil, e
	}
	if !p.capability.allows(channel, "publish") {
		return nil, capabilityDenied(channel, "publish")
	}
	body, e := readJSONBody(r)
	if e != nil {
		return nil, e
	}
	msgs, e := parseMessages(body)
	if e != nil {
		return nil, e
	}
	group, e := prepareGroup(p, msgs)
	if e != nil {
		return nil, e
	}
	res := s.store.publish(channel, group)
	return &res, nil
}

func capabilityDenied(channel, op string) *ablyError {
	return newErr(401, 40160, "Channel denied access based on given capability; operation = %s, channelId = %s", op, channel)
}

// ---- batch publish (POST /messages) ----

type batchSpec struct {
	Channels json.RawMessage `json:"channels"`
	Messages json.RawMessage `json:"messages"`
}

type batchResult struct {
	Channel   string     `json:"channel"`
	MessageID string     `json:"messageId,omitempty"`
	Error     *ablyError `json:"error,omitempty"`
}

func (s *Server) handleBatchPublish(w http.ResponseWriter, r *http.Request) {
	if e, retryAfter := s.store.takeFault(); e != nil {
		if retryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
		}
		setWho(r, "fault-injected")
		writeError(w, e)
		return
	}
	p, e := s.authenticate(r)
	if e != nil {
		s.store.countRefused(1)
		writeError(w, e)
		return
	}
	results, e := s.batchPublish(p, r)
	if e != nil {
		s.store.countRefused(1)
		writeError(w, e)
		return
	}
	failed := 0
	for _, res := range results {
		if res.Error != nil {
			failed++
		}
	}
	if failed == 0 {
		writeJSON(w, 201, results)
		return
	}
	e = newErr(400, 40020, "Batched response includes errors")
	setErrorHeaders(w, e)
	writeJSON(w, 400, map[string]any{"error": e, "batchResponse": results})
}

func (s *Server) batchPublish(p *principal, r *http.Request) ([]batchResult, *ablyError) {
	body, e := readJSONBody(r)
	if e != nil {
		return nil, e
	}
	var specs []batchSpec
	if b := bytes.TrimSpace(body); b[0] == '[' {
		if err := json.Unmarshal(b, &specs); err != nil {
			return nil, newErr(400, 40001, "invalid batch publish body: %v", err)
		}
	} else {
		var one batchSpec
		if err := json.Unmarshal(b, &one); err != nil {
			return nil, newErr(400, 40001, "invalid batch publish body: %v", err)
		}
		specs = []batchSpec{one}
	}
	if len(specs) == 0 {
		return nil, newErr(400, 40000, "batch publish body has no BatchSpec")
	}
	type parsed struct {
		channels []string
		msgs     []inMessage
	}
	all := make([]parsed, 0, len(specs))
	distinct := map[string]bool{}
	total := 0
	for i, sp := range specs {
		chans, err := stringOrStrings(sp.Channels)
		if err != nil || len(chans) == 0 {
			return nil, newErr(400, 40000, "BatchSpec %d: channels must be a non-empty string or array of strings", i)
		}
		if len(bytes.TrimSpace(sp.Messages)) == 0 || string(bytes.TrimSpace(sp.Messages)) == "null" {
			return nil, newErr(400, 40000, "BatchSpec %d: messages is required", i)
		}
		msgs, e := parseMessages(sp.Messages)
		if e != nil {
			e.Message = fmt.Sprintf("BatchSpec %d: %s", i, e.Message)
			return nil, e
		}
		for _, c := range chans {
			distinct[c] = true
		}
		total += len(msgs)
		all = append(all, parsed{chans, msgs})
	}
	if len(distinct) > maxBatchChannels {
		return nil, newErr(400, 90010, "batch publish to %d channels; at most %d per request", len(distinct), maxBatchChannels)
	}
	if total > maxBatchMessages {
		return nil, newErr(400, 40000, "batch publish of %d messages; at most %d per request", total, maxBatchMessages)
	}
	var results []batchResult
	for _, sp := range all {
		group, ge := prepareGroup(p, sp.msgs)
		for _, ch := range sp.channels {
			e := validChannelName(ch)
			if e == nil && !p.capability.allows(ch, "publish") {
				e = capabilityDenied(ch, "publish")
			}
			if e == nil && ge != nil {
				e = ge
			}
			if e != nil {
				s.store.countRefused(1)
				results = append(results, batchResult{Channel: ch, Error: e})
				continue
			}
			res := s.store.publish(ch, group)
			results = append(results, batchResult{Channel: ch, MessageID: res.MessageID})
		}
	}
	return results, nil
}

func stringOrStrings(raw json.RawMessage) ([]string, error) {
	var one string
	if err := json.Unmarshal(raw, &one); err == nil {
		return []string{one}, nil
	}
	var many []string
	if err := json.Unmarshal(raw, &many); err != nil {
		return nil, err
	}
	return many, nil
}

// ---- history ----

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, channel, leaf string) {
	p, e := s.authenticate(r)
	if e != nil {
		writeError(w, e)
		return
	}
	if e := validChannelName(channel); e != nil {
		writeError(w, e)
		return
	}
	if !p.capability.allows(channel, "history") {
		writeError(w, capabilityDenied(channel, "history"))
		return
	}
	q := r.URL.Query()
	limit := defaultHistory
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxHistory {
			writeError(w, newErr(400, 40003, "limit must be an integer between 1 and %d", maxHistory))
			return
		}
		limit = n
	}
	forwards := false
	switch q.Get("direction") {
	case "", "backwards":
	case "forwards":
		forwards = true
	default:
		writeError(w, newErr(400, 40003, "direction must be forwards or backwards"))
		return
	}
	var start, end int64 = 0, 1<<63 - 1
	for name, dst := range map[string]*int64{"start": &start, "end": &end} {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				writeError(w, newErr(400, 40003, "%s must be a time in milliseconds since the epoch", name))
				return
			}
			*dst = n
		}
	}
	if start > end {
		writeError(w, newErr(400, 40003, "start must not be after end"))
		return
	}
	var cursor int64 = -1
	if v := q.Get("cursor"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			writeError(w, newErr(400, 40003, "invalid cursor"))
			return
		}
		cursor = n
	}
	items, next := s.store.history(channel, forwards, limit, start, end, cursor)
	out := make([]historyItem, len(items))
	for i, m := range items {
		out[i] = m.item(false)
	}
	// Pagination like Ably: relative Link headers (the cursor is the stand-in's own).
	q.Del("cursor")
	q.Set("limit", strconv.Itoa(limit))
	if forwards {
		q.Set("direction", "forwards")
	} else {
		q.Set("direction", "backwards")
	}
	links := []string{fmt.Sprintf("<./%s?%s>; rel=\"first\"", leaf, q.Encode())}
	if next >= 0 {
		q.Set("cursor", strconv.FormatInt(next, 10))
		links = append(links, fmt.Sprintf("<./%s?%s>; rel=\"next\"", leaf, q.Encode()))
	}
	w.Header().Set("Link", strings.Join(links, ", "))
	writeJSON(w, 200, out)
}

// ---- /_standin/ control endpoints (unauthenticated; test use only) ----

func (s *Server) routeControl(w http.ResponseWriter, r *http.Request, what string) {
	setWho(r, "standin-control")
	switch what {
	case "messages":
		switch r.Method {
		case "GET":
			q := r.URL.Query()
			ch, filter := q.Get("channel"), q.Has("channel")
			after := int64(0)
			if q.Has("after") {
				n, err := strconv.ParseInt(q.Get("after"), 10, 64)
				if err != nil || n < 0 {
					writeError(w, newErr(400, 40003, "after must be a message's global acceptance number (0 or more)"))
					return
				}
				after = n
			}
			msgs, last := s.store.after(after)
			w.Header().Set("X-Standin-Last-Event", strconv.FormatInt(last, 10))
			out := make([]historyItem, 0, len(msgs))
			for _, m := range msgs {
				if !filter || m.Channel == ch {
					out = append(out, m.item(true))
				}
			}
			writeJSON(w, 200, out)
		case "DELETE":
			s.store.reset()
			s.nonceMu.Lock()
			s.nonces = map[string]int64{}
			s.nonceMu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		default:
			writeError(w, newErr(405, 40500, "use GET or DELETE"))
		}
	case "stats":
		s.onlyMethods(w, r, func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, s.store.stats()) }, "GET")
	case "faults":
		switch r.Method {
		case "POST":
			body, e := readJSONBody(r)
			if e != nil {
				writeError(w, e)
				return
			}
			var f struct {
				Status     *int `json:"status"`
				Count      int  `json:"count"`
				Seconds    int  `json:"seconds"`
				RetryAfter int  `json:"retryAfter"`
			}
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&f); err != nil || f.Status == nil {
				writeError(w, newErr(400, 40000, `want {"status":503|500|429,"count":N[,"retryAfter":S]} or {"status":0,"seconds":S}`))
				return
			}
			switch *f.Status {
			case 500, 503, 429:
				if f.Count < 1 || f.Seconds != 0 {
					writeError(w, newErr(400, 40000, "status %d needs count >= 1 (and no seconds)", *f.Status))
					return
				}
				if f.RetryAfter < 0 || (f.RetryAfter > 0 && *f.Status != 429) {
					writeError(w, newErr(400, 40000, "retryAfter is for status 429 only, in whole seconds"))
					return
				}
				s.store.setFault(*f.Status, f.Count, f.RetryAfter)
			case 0:
				if f.Seconds < 1 || f.Count != 0 {
					writeError(w, newErr(400, 40000, "status 0 (drop connections) needs seconds >= 1 (and no count)"))
					return
				}
				s.store.setDrop(time.Duration(f.Seconds) * time.Second)
			default:
				writeError(w, newErr(400, 40000, "status must be 503, 500, 429 or 0"))
				return
			}
			writeJSON(w, 200, s.store.faultState())
		case "GET":
			writeJSON(w, 200, s.store.faultState())
		case "DELETE":
			s.store.clearFaults()
			w.WriteHeader(http.StatusNoContent)
		default:
			writeError(w, newErr(405, 40500, "use POST, GET or DELETE"))
		}
	default:
		writeError(w, newErr(404, 40400, "unknown stand-in endpoint %s", r.URL.EscapedPath()))
	}
}
