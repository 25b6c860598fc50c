package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ---- SSE harness ----

type sseEvent struct{ id, event, data, comment string }

type sseStream struct {
	t      *testing.T
	res    *http.Response
	cancel context.CancelFunc
	events chan sseEvent // closed at end of stream
	done   chan struct{}
}

// sse opens a stream on path (e.g. "/sse?channels=a&v=1.2&key=...") and fails
// the test unless it is answered 200.
func (h *harness) sse(path string, hdr ...string) *sseStream {
	h.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", h.ts.URL+path, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := h.ts.Client().Do(req)
	if err != nil {
		cancel()
		h.t.Fatalf("GET %s: %v", path, err)
	}
	if res.StatusCode != 200 {
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		cancel()
		h.t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	s := &sseStream{t: h.t, res: res, cancel: cancel, events: make(chan sseEvent, 100), done: make(chan struct{})}
	go s.read()
	h.t.Cleanup(s.close)
	return s
}

// read parses the stream as EventSource would (comments are passed on too).
func (s *sseStream) read() {
	defer close(s.events)
	emit := func(ev sseEvent) bool {
		select {
		case s.events <- ev:
			return true
		case <-s.done:
			return false
		}
	}
	sc := bufio.NewScanner(s.res.Body)
	var ev sseEvent
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if data != nil || ev.event != "" || ev.id != "" {
				ev.data = strings.Join(data, "\n")
				if !emit(ev) {
					return
				}
			}
			ev, data = sseEvent{}, nil
		case strings.HasPrefix(line, ":"):
			if !emit(sseEvent{comment: line[1:]}) {
				return
			}
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.id = value
			case "event":
				ev.event = value
			case "data":
				data = append(data, value)
			}
		}
	}
}

func (s *sseStream) close() {
	select {
	case <-s.done:
	default:
		close(s.done)
		s.cancel()
		s.res.Body.Close()
	}
}

// nextAny returns the next event or comment; ok is false at end of stream.
func (s *sseStream) nextAny() (sseEvent, bool) {
	s.t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(5 * time.Second):
		s.t.Fatal("no SSE event within 5s")
		return sseEvent{}, false
	}
}

// next returns the next event, skipping comments.
func (s *sseStream) next() sseEvent {
	s.t.Helper()
	for {
		ev, ok := s.nextAny()
		if !ok {
			s.t.Fatal("SSE stream ended")
		}
		if ev.comment == "" {
			return ev
		}
	}
}

// message returns the next event's Message envelope, checking it is a message event.
func (s *sseStream) message() (sseEvent, map[string]any) {
	s.t.Helper()
	ev := s.next()
	var m map[string]any
	if ev.event != "message" || json.Unmarshal([]byte(ev.data), &m) != nil {
		s.t.Fatalf("want a message event with a JSON envelope, got %+v", ev)
	}
	return ev, m
}

// names reads n message events and returns their names.
func (s *sseStream) names(n int) []string {
	s.t.Helper()
	out := make([]string, n)
	for i := range out {
		_, m := s.message()
		out[i], _ = m["name"].(string)
	}
	return out
}

func (s *sseStream) expectEnd() {
	s.t.Helper()
	for {
		ev, ok := s.nextAny()
		if !ok {
			return
		}
		if ev.comment == "" {
			s.t.Fatalf("want end of stream, got %+v", ev)
		}
	}
}

func (h *harness) publish(channel, body string) {
	h.t.Helper()
	if r := h.do("POST", "/channels/"+channel+"/messages", basicAuth(), body); r.status != 201 {
		h.t.Fatalf("publish to %s: %d %s", channel, r.status, r.body)
	}
}

func (h *harness) sseSubscribers() int {
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(h.t, &st)
	return st["sseSubscribers"]
}

func (h *harness) waitSubscribers(n int) {
	h.t.Helper()
	for i := 0; i < 200; i++ {
		if h.sseSubscribers() == n {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	h.t.Fatalf("sseSubscribers %d, want %d", h.sseSubscribers(), n)
}

var keyParam = "key=" + url.QueryEscape(testKey)

func join(s []string) string { return strings.Join(s, ",") }

// ---- tests ----

func TestSSEDeliversEachPublishOnceInOrder(t *testing.T) {
	h := newHarness(t)
	tok := h.token(`{"location:a":["subscribe"]}`, "viewer")
	viewer := h.sse("/sse?channels=location:a&v=1.2&accessToken=" + tok)
	keyHolder := h.sse("/sse?channel=location:a&v=1.2&" + keyParam)
	hd := viewer.res.Header
	if hd.Get("Content-Type") != "text/event-stream" || hd.Get("Cache-Control") != "no-cache" || hd.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("headers %v", hd)
	}
	if n := h.sseSubscribers(); n != 2 {
		t.Fatalf("sseSubscribers %d", n)
	}

	h.publish("location:a", `{"id":"m1","name":"p1","data":{"lat": 1}}`)
	r := h.do("POST", "/messages", basicAuth(), `{"channels":["location:b","location:a"],"messages":[{"name":"b1","data":"x"},{"name":"b2","data":"y"}]}`)
	if r.status != 201 {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	h.publish("location:a", `{"id":"m1","name":"p1","data":{"lat": 1}}`) // de-duplicated: not sent again
	h.publish("location:b", `{"name":"other channel"}`)
	h.publish("location:a", `{"id":"m3","name":"p3","data":"AAE=","encoding":"base64","clientId":"pub"}`)

	for _, s := range []*sseStream{viewer, keyHolder} {
		var ids []int64
		var envs []map[string]any
		for i := 0; i < 4; i++ {
			ev, m := s.message()
			id, err := strconv.ParseInt(ev.id, 10, 64)
			if err != nil || (len(ids) > 0 && id <= ids[len(ids)-1]) {
				t.Fatalf("event ids not increasing: %v then %q", ids, ev.id)
			}
			ids = append(ids, id)
			envs = append(envs, m)
		}
		var got []string
		for _, m := range envs {
			got = append(got, m["name"].(string))
		}
		if join(got) != "p1,b1,b2,p3" {
			t.Fatalf("order: %v", got)
		}
		p1, _ := json.Marshal(envs[0])
		if envs[0]["id"] != "m1" || envs[0]["channel"] != "location:a" || envs[0]["serial"] == "" ||
			envs[0]["timestamp"].(float64) != float64(h.now().UnixMilli()) || !strings.Contains(string(p1), `"data":{"lat":1}`) {
			t.Fatalf("envelope p1: %s", p1)
		}
		if envs[3]["data"] != "AAE=" || envs[3]["encoding"] != "base64" || envs[3]["clientId"] != "pub" {
			t.Fatalf("envelope p3: %v", envs[3])
		}
		// Nothing else was queued before this one: no duplicate of m1.
		h.publish("location:a", `{"name":"sentinel"}`)
		if _, m := s.message(); m["name"] != "sentinel" {
			t.Fatalf("after p3: %v", m)
		}
	}
}

func TestSSERefusalsAreNormalResponses(t *testing.T) {
	h := newHarness(t)
	tok := h.token(`{"location:a":["subscribe"],"location:p":["publish"]}`, "viewer")
	cases := []struct {
		name, path   string
		status, code int
	}{
		{"channel outside capability", "/sse?channels=location:a,location:b&v=1.2&accessToken=" + tok, 401, 40160},
		{"publish-only capability", "/sse?channels=location:p&v=1.2&accessToken=" + tok, 401, 40160},
		{"missing v", "/sse?channels=location:a&accessToken=" + tok, 400, 40000},
		{"no credentials", "/sse?channels=location:a&v=1.2", 401, 40101},
		{"wrong key", "/sse?channels=location:a&v=1.2&key=app.key:nope", 401, 40101},
		{"not a JWT", "/sse?channels=location:a&v=1.2&accessToken=opaque", 401, 40143},
		{"forged JWT", "/sse?channels=location:a&v=1.2&accessToken=" + keyHolderJWT("x", map[string]any{"iat": 1, "exp": 1 << 40}), 401, 40144},
		{"no channels", "/sse?v=1.2&accessToken=" + tok, 400, 40000},
		{"bad channel name", "/sse?channels=location:a,:x&v=1.2&accessToken=" + tok, 400, 40010},
		{"rewind over 100", "/sse?channels=location:a&v=1.2&rewind=101&accessToken=" + tok, 400, 40003},
		{"bad lastEvent", "/sse?channels=location:a&v=1.2&lastEvent=x:1&accessToken=" + tok, 400, 40003},
		{"bad enveloped", "/sse?channels=location:a&v=1.2&enveloped=maybe&accessToken=" + tok, 400, 40003},
		{"event-stream without Accept", "/event-stream?channels=location:a&v=1.2&accessToken=" + tok, 400, 40000},
	}
	for _, c := range cases {
		r := h.do("GET", c.path, "", "")
		if r.status != c.status || r.errCode(t) != c.code || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
			t.Errorf("%s: got %d %s %s, want %d/%d", c.name, r.status, r.header.Get("Content-Type"), r.body, c.status, c.code)
		}
		if c.code == 40160 && !strings.Contains(string(r.body), "operation = subscribe, channelId = location:") {
			t.Errorf("%s: message does not name the channel: %s", c.name, r.body)
		}
	}
	if r := h.do("GET", cases[0].path, "", ""); !strings.Contains(string(r.body), "channelId = location:b") {
		t.Errorf("40160 should name location:b: %s", r.body)
	}
	if r := h.do("POST", "/sse?channels=location:a&v=1.2&accessToken="+tok, "", `{}`); r.status != 405 || r.errCode(t) != 40500 {
		t.Errorf("POST /sse: %d %s", r.status, r.body)
	}
	h.advance(2 * time.Hour)
	if r := h.do("GET", "/sse?channels=location:a&v=1.2&accessToken="+tok, "", ""); r.status != 401 || r.errCode(t) != 40142 {
		t.Errorf("expired token: %d %s", r.status, r.body)
	}
	if n := h.sseSubscribers(); n != 0 {
		t.Errorf("refused requests left %d subscribers", n)
	}
}

func TestSSEOtherWaysIn(t *testing.T) {
	h := newHarness(t)
	tok := h.token(`{"location:*":["subscribe"]}`, "")
	streams := []*sseStream{
		h.sse("/sse?channels=location:a&v=1.2", "Authorization", bearer(tok)),
		h.sse("/sse?channels=location:a&v=1.2", "Authorization", basicAuth()),
		h.sse("/event-stream?channels=location:a&v=1.2&accessToken="+tok, "Accept", "text/event-stream"),
		h.sse("/sse?separator=|&channels=fo,o|location:a&v=1.2&" + keyParam),
	}
	h.publish("fo,o", `{"name":"comma"}`)
	h.publish("location:a", `{"name":"a"}`)
	for i, s := range streams[:3] {
		if got := s.names(1); got[0] != "a" {
			t.Errorf("stream %d: %v", i, got)
		}
	}
	if got := streams[3].names(2); join(got) != "comma,a" {
		t.Errorf("separator: %v", got)
	}
}

func TestSSERewind(t *testing.T) {
	h := newHarness(t)
	h.publish("location:a", `{"name":"too old"}`)
	h.advance(3 * time.Minute)
	for _, m := range []struct{ ch, name string }{{"location:a", "a1"}, {"location:b", "b1"}, {"location:a", "a2"}, {"location:a", "a3"}} {
		h.publish(m.ch, `{"name":"`+m.name+`"}`)
		h.advance(time.Millisecond)
	}
	s := h.sse("/sse?channels=location:a&v=1.2&rewind=2&" + keyParam)
	if got := s.names(2); join(got) != "a2,a3" {
		t.Fatalf("rewind=2: %v", got)
	}
	h.publish("location:a", `{"name":"live"}`)
	if got := s.names(1); got[0] != "live" {
		t.Fatalf("after rewind: %v", got)
	}
	// Per channel, merged in acceptance order; nothing older than two minutes.
	s = h.sse("/sse?channels=location:a,location:b&v=1.2&rewind=100&" + keyParam)
	if got := s.names(5); join(got) != "a1,b1,a2,a3,live" {
		t.Fatalf("rewind=100 on two channels: %v", got)
	}
	s = h.sse("/sse?channels=location:a&v=1.2&rewind=0&" + keyParam)
	h.publish("location:a", `{"name":"only live"}`)
	if got := s.names(1); got[0] != "only live" {
		t.Fatalf("rewind=0: %v", got)
	}
}

func TestSSELastEventResumes(t *testing.T) {
	h := newHarness(t)
	s := h.sse("/sse?channels=location:a&v=1.2&" + keyParam)
	h.publish("location:a", `{"name":"a1"}`)
	h.publish("location:a", `{"name":"a2"}`)
	first, _ := s.message()
	second, _ := s.message()
	s.close()
	h.waitSubscribers(0)
	h.publish("location:a", `{"name":"a3"}`)
	h.publish("location:b", `{"name":"b1"}`)
	h.publish("location:a", `{"name":"a4"}`)

	// rewind is ignored when resuming.
	s = h.sse("/sse?channels=location:a&v=1.2&rewind=1&lastEvent=" + first.id + "&" + keyParam)
	if got := s.names(3); join(got) != "a2,a3,a4" {
		t.Fatalf("lastEvent=%s: %v", first.id, got)
	}
	h.publish("location:a", `{"name":"a5"}`)
	if got := s.names(1); got[0] != "a5" {
		t.Fatalf("live after resume: %v", got)
	}
	// What EventSource sends when it reconnects by itself.
	s = h.sse("/sse?channels=location:a,location:b&v=1.2&"+keyParam, "Last-Event-ID", second.id)
	if got := s.names(4); join(got) != "a3,b1,a4,a5" {
		t.Fatalf("Last-Event-ID %s: %v", second.id, got)
	}
	// An id from the future (e.g. from before a restart) replays nothing.
	s = h.sse("/sse?channels=location:a&v=1.2&lastEvent=999999&" + keyParam)
	h.publish("location:a", `{"name":"a6"}`)
	if got := s.names(1); got[0] != "a6" {
		t.Fatalf("future lastEvent: %v", got)
	}
}

func TestSSEEnvelopedFalse(t *testing.T) {
	h := newHarness(t)
	s := h.sse("/sse?channels=c&v=1.2&enveloped=false&" + keyParam)
	bodies := []string{`{"data":"hello"}`, `{"data":{"k": [1, 2]}}`, `{"data":"line1\nline2"}`,
		`{"data":"{\"a\":1}","encoding":"json"}`, `{"name":"no data"}`}
	for _, b := range bodies {
		h.publish("c", b)
	}
	want := []string{"hello", `{"k":[1,2]}`, "line1\nline2", `{"a":1}`, ""}
	for i, w := range want {
		ev := s.next()
		if ev.event != "message" || ev.id == "" || ev.data != w {
			t.Errorf("message %d: got %+v, want data %q", i, ev, w)
		}
	}
}

func TestSSEKeepalive(t *testing.T) {
	h := newHarness(t)
	h.srv.sseKeepalive = 20 * time.Millisecond
	s := h.sse("/sse?channels=c&v=1.2&" + keyParam)
	ev, ok := s.nextAny()
	if !ok || ev.comment != "keepalive" {
		t.Fatalf("want a :keepalive comment, got %+v", ev)
	}
}

func TestSSETokenExpiryEndsStream(t *testing.T) {
	h := newHarness(t)
	h.srv.sseKeepalive = 20 * time.Millisecond
	tok := h.token(`{"c":["subscribe"]}`, "viewer")
	s := h.sse("/sse?channels=c&v=1.2&accessToken=" + tok)
	h.publish("c", `{"name":"before"}`)
	if got := s.names(1); got[0] != "before" {
		t.Fatalf("%v", got)
	}
	h.advance(time.Hour) // the default token ttl
	ev := s.next()
	var e ablyError
	if ev.event != "error" || json.Unmarshal([]byte(ev.data), &e) != nil || e.Code != 40142 || e.StatusCode != 401 ||
		e.Message != "Token expired" || e.Href != "https://help.ably.io/error/40142" {
		t.Fatalf("want the 40142 error event, got %+v", ev)
	}
	s.expectEnd()
	h.waitSubscribers(0)
	if !strings.Contains(h.logBuf.String(), "end=token-expired") {
		t.Errorf("log:\n%s", h.logBuf.String())
	}
}

func TestSSEDisconnectRemovesSubscriberAndLogsOnce(t *testing.T) {
	h := newHarness(t)
	tok := h.token(`{"location:*":["subscribe"]}`, "viewer")
	a := h.sse("/sse?channels=location:a,location:b&v=1.2&accessToken=" + tok)
	b := h.sse("/sse?channels=location:a&v=1.2&" + keyParam)
	h.publish("location:a", `{"name":"n"}`)
	a.names(1)
	b.names(1)
	if n := h.sseSubscribers(); n != 2 {
		t.Fatalf("sseSubscribers %d", n)
	}
	a.close()
	h.waitSubscribers(1)
	b.close()
	h.waitSubscribers(0)
	h.publish("location:a", `{"name":"nobody listens"}`) // must not block or fail

	var sseLines []string
	for _, l := range strings.Split(h.logBuf.String(), "\n") {
		if strings.Contains(l, " /sse ") {
			sseLines = append(sseLines, l)
		}
	}
	if len(sseLines) != 2 ||
		!strings.Contains(sseLines[0], `GET /sse 200 `) || !strings.Contains(sseLines[0], `auth=token(app.key clientId=viewer) channels="location:a,location:b" events=1 end=client-closed`) ||
		!strings.Contains(sseLines[1], `auth=basic(app.key) channels="location:a" events=1 end=client-closed`) {
		t.Fatalf("want one line per stream:\n%s", strings.Join(sseLines, "\n"))
	}
	logs := h.logBuf.String()
	for _, secret := range []string{testSecret, tok, strings.Split(tok, ".")[2]} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

func TestSSESlowSubscriberIsCutOffWithoutBlockingPublishers(t *testing.T) {
	// In the store: a full buffer ends the subscription instead of blocking.
	st := NewStore(time.Now)
	sub, _ := st.subscribe([]string{"c"}, -1, 0, 2, time.Minute)
	for i := 0; i < 3; i++ {
		st.publish("c", &group{msgs: []inMessage{{Name: fmt.Sprint(i)}}})
	}
	select {
	case <-sub.overflow:
	default:
		t.Fatal("overflow not signalled")
	}
	if len(sub.ch) != 2 || len(st.subs) != 0 {
		t.Fatalf("queued %d, subscribers %d", len(sub.ch), len(st.subs))
	}

	// Over HTTP: the queued messages arrive, then an 80020 error event, and
	// lastEvent picks up exactly where the stream stopped.
	h := newHarness(t)
	h.srv.sseBuffer = 1
	s := h.sse("/sse?channels=c&v=1.2&" + keyParam)
	msgs := strings.TrimSuffix(strings.Repeat(`{"name":"n"},`, 1000), ",")
	h.publish("c", "["+msgs+"]") // one publish, fanned out under the store lock
	got, last := 0, ""
	for {
		ev := s.next()
		if ev.event == "error" {
			var e ablyError
			if json.Unmarshal([]byte(ev.data), &e) != nil || e.Code != 80020 || e.StatusCode != 500 {
				t.Fatalf("error event %+v", ev)
			}
			break
		}
		got, last = got+1, ev.id
	}
	s.expectEnd()
	if got == 0 || got == 1000 {
		t.Fatalf("%d messages before the error", got)
	}
	s = h.sse("/sse?channels=c&v=1.2&lastEvent=" + last + "&" + keyParam)
	for i := got; i < 1000; i++ {
		s.message()
	}
	h.publish("c", `{"name":"end"}`)
	if n := s.names(1); n[0] != "end" {
		t.Fatalf("after resume: %v", n)
	}
}

func TestSSEServerShutdownEndsStreams(t *testing.T) {
	h := newHarness(t)
	s := h.sse("/sse?channels=c&v=1.2&" + keyParam)
	h.srv.closeStreams()
	s.expectEnd()
	h.waitSubscribers(0)
	if !strings.Contains(h.logBuf.String(), "end=server-shutdown") {
		t.Errorf("log:\n%s", h.logBuf.String())
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t)
	for _, path := range []string{"/keys/app.key/requestToken", "/sse?channels=c&v=1.2"} {
		r := h.do("OPTIONS", path, "", "", "Origin", "http://worker.example", "Access-Control-Request-Method", "POST",
			"Access-Control-Request-Headers", "content-type")
		if r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" ||
			r.header.Get("Access-Control-Allow-Methods") != "POST, GET, OPTIONS" ||
			r.header.Get("Access-Control-Allow-Headers") != "Content-Type, Authorization" {
			t.Errorf("preflight %s: %d %v", path, r.status, r.header)
		}
	}
	r := h.do("POST", "/keys/app.key/requestToken", "",
		signedTokenRequest("", `{"location:a":["subscribe"]}`, "", h.now().UnixMilli(), "nonce-cors-000001"), "Origin", "http://worker.example")
	if r.status != 200 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("requestToken: %d %v", r.status, r.header)
	}
	if r := h.do("GET", "/sse?channels=c&v=1.2", "", ""); r.status != 401 || r.header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("refused /sse: %d %v", r.status, r.header)
	}
}
