package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- harness ----

type harness struct {
	t      *testing.T
	srv    *Server
	ts     *httptest.Server
	mu     sync.Mutex
	clock  time.Time
	logBuf *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const (
	testKeyName = "app.key"
	testSecret  = "secret" // the secret ably-python signed the golden vectors with
	testKey     = testKeyName + ":" + testSecret
)

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{t: t, clock: time.UnixMilli(1795636050000), logBuf: &syncBuffer{}}
	h.srv = NewServer(apiKey{Name: testKeyName, Secret: testSecret}, log.New(h.logBuf, "", 0))
	h.srv.now = h.now
	h.ts = httptest.NewServer(h.srv)
	t.Cleanup(h.ts.Close)
	t.Cleanup(h.srv.closeStreams) // runs first: ts.Close waits for open SSE streams
	return h
}

func (h *harness) now() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.clock
}

func (h *harness) advance(d time.Duration) {
	h.mu.Lock()
	h.clock = h.clock.Add(d)
	h.mu.Unlock()
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decoding %q: %v", r.body, err)
	}
}

// errCode returns the Ably error code in the body, checking the shape and headers.
func (r resp) errCode(t *testing.T) int {
	t.Helper()
	var e struct {
		Error *ablyError `json:"error"`
	}
	r.json(t, &e)
	if e.Error == nil {
		t.Fatalf("no error object in %s", r.body)
	}
	if e.Error.StatusCode != r.status {
		t.Errorf("error.statusCode %d != HTTP status %d", e.Error.StatusCode, r.status)
	}
	if want := fmt.Sprintf("https://help.ably.io/error/%d", e.Error.Code); e.Error.Href != want {
		t.Errorf("href %q, want %q", e.Error.Href, want)
	}
	if got := r.header.Get("X-Ably-ErrorCode"); got != fmt.Sprint(e.Error.Code) {
		t.Errorf("X-Ably-ErrorCode %q, body code %d", got, e.Error.Code)
	}
	if r.header.Get("X-Ably-ErrorMessage") == "" {
		t.Errorf("no X-Ably-ErrorMessage header")
	}
	return e.Error.Code
}

func (h *harness) do(method, path, auth, body string, hdr ...string) resp {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return resp{res.StatusCode, res.Header, b}
}

func basicAuth() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(testKey))
}

// bearer encodes a token the way ably-python and ably-js send it.
func bearer(tok string) string { return "Bearer " + base64.StdEncoding.EncodeToString([]byte(tok)) }

// signedTokenRequest builds a TokenRequest body signed like ably-python 3.1.4.
func signedTokenRequest(ttl, capability, clientID string, ts int64, nonce string) string {
	text := testKeyName + "\n" + ttl + "\n" + capability + "\n" + clientID + "\n" + fmt.Sprint(ts) + "\n" + nonce + "\n"
	m := hmac.New(sha256.New, []byte(testSecret))
	m.Write([]byte(text))
	tr := map[string]any{"keyName": testKeyName, "nonce": nonce, "timestamp": ts,
		"mac": base64.StdEncoding.EncodeToString(m.Sum(nil)), "ttl": nil, "capability": nil, "clientId": nil}
	if ttl != "" {
		tr["ttl"] = json.Number(ttl)
	}
	if capability != "" {
		tr["capability"] = capability
	}
	if clientID != "" {
		tr["clientId"] = clientID
	}
	b, _ := json.Marshal(tr)
	return string(b)
}

var nonceSeq int

func (h *harness) token(capability, clientID string) string {
	h.t.Helper()
	nonceSeq++
	r := h.do("POST", "/keys/app.key/requestToken", "",
		signedTokenRequest("", capability, clientID, h.now().UnixMilli(), fmt.Sprintf("nonce-%012d", nonceSeq)))
	if r.status != 200 {
		h.t.Fatalf("requestToken: %d %s", r.status, r.body)
	}
	var td tokenDetails
	r.json(h.t, &td)
	return td.Token
}

// keyHolderJWT mints an Ably JWT the way an app server would (no stand-in involved).
func keyHolderJWT(secret string, claims map[string]any) string {
	hdr := `{"alg":"HS256","typ":"JWT","kid":"app.key"}`
	c, _ := json.Marshal(claims)
	signing := b64url.EncodeToString([]byte(hdr)) + "." + b64url.EncodeToString(c)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(signing))
	return signing + "." + b64url.EncodeToString(m.Sum(nil))
}

// ---- tests ----

func TestParseAPIKey(t *testing.T) {
	k, err := parseAPIKey("appA.keyB:s3cr:et")
	if err != nil || k.Name != "appA.keyB" || k.Secret != "s3cr:et" {
		t.Fatalf("got %+v, %v", k, err)
	}
	for _, bad := range []string{"", "app.key", "app.key:", "appkey:secret", ".key:secret", "app.:secret"} {
		if _, err := parseAPIKey(bad); err == nil {
			t.Errorf("parseAPIKey(%q) accepted", bad)
		}
	}
}

func TestTimeAndHealthz(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/time", "", "")
	var ts []int64
	r.json(t, &ts)
	if r.status != 200 || len(ts) != 1 || ts[0] != h.now().UnixMilli() {
		t.Fatalf("/time: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/healthz", "", "")
	if r.status != 200 || string(r.body) != "ok" {
		t.Fatalf("/healthz: %d %q", r.status, r.body)
	}
}

func TestUnknownRouteAndMethodUseAblyErrorShape(t *testing.T) {
	h := newHarness(t)
	r := h.do("GET", "/nope", basicAuth(), "")
	if r.status != 404 || r.errCode(t) != 40400 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	r = h.do("DELETE", "/channels/x/messages", basicAuth(), "")
	if r.status != 405 || r.errCode(t) != 40500 {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	// Ably's header spelling is kept on the wire (Go's client would canonicalise it).
	conn, err := net.Dial("tcp", strings.TrimPrefix(h.ts.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	if !strings.Contains(string(raw), "\r\nX-Ably-ErrorCode: 40400\r\n") || !strings.Contains(string(raw), "\r\nX-Ably-ErrorMessage: ") {
		t.Errorf("X-Ably-ErrorCode/ErrorMessage not sent with Ably's spelling:\n%s", raw)
	}
}

// The two TokenRequests below were produced by ably-python 3.1.4's
// create_token_request (key app.key:secret) and captured on the wire.
func TestTokenRequestGoldenVectorsFromAblyPython(t *testing.T) {
	h := newHarness(t)
	h.clock = time.UnixMilli(1795636050500)
	vectors := []string{
		`{"keyName":"app.key","clientId":null,"ttl":null,"nonce":"03213b115a974172","capability":null,"timestamp":1795636050246,"mac":"ypBqaVGErN6+wJX43bjtyb8XG5JI4E2IYwZNFBxYYD8="}`,
		`{"keyName":"app.key","clientId":"u1","ttl":null,"nonce":"343f325ce5074566","capability":"{\"user:u1\": [\"subscribe\"]}","timestamp":1795636050423,"mac":"SUOtqwQRTLGjX+R7AVW2IdyowUGoqWiF1jQQRY/Vno8="}`,
	}
	for i, v := range vectors {
		r := h.do("POST", "/keys/app.key/requestToken", "", v)
		if r.status != 200 {
			t.Fatalf("vector %d: %d %s", i, r.status, r.body)
		}
		var td tokenDetails
		r.json(t, &td)
		if td.KeyName != "app.key" || td.Expires-td.Issued != time.Hour.Milliseconds() {
			t.Errorf("vector %d: %+v", i, td)
		}
		if i == 0 && (td.Capability != `{"*":["*"]}` || td.ClientID != "") {
			t.Errorf("vector 0 defaults: %+v", td)
		}
		if i == 1 && (td.Capability != `{"user:u1": ["subscribe"]}` || td.ClientID != "u1") {
			t.Errorf("vector 1: %+v", td)
		}
		// The token is an HS256 JWT, kid = key name, with Ably's claims.
		parts := strings.Split(td.Token, ".")
		if len(parts) != 3 {
			t.Fatalf("token %q is not a JWT", td.Token)
		}
		hb, _ := b64url.DecodeString(parts[0])
		cb, _ := b64url.DecodeString(parts[1])
		var hdr, cl map[string]any
		_ = json.Unmarshal(hb, &hdr)
		_ = json.Unmarshal(cb, &cl)
		if hdr["alg"] != "HS256" || hdr["kid"] != "app.key" {
			t.Errorf("header %v", hdr)
		}
		if cl["x-ably-capability"] != td.Capability || int64(cl["exp"].(float64))*1000 != td.Expires ||
			int64(cl["iat"].(float64))*1000 != td.Issued {
			t.Errorf("claims %v vs %+v", cl, td)
		}
		if i == 1 && cl["x-ably-clientId"] != "u1" {
			t.Errorf("clientId claim %v", cl)
		}
	}
	// Exchanging the same TokenRequest again is a nonce replay.
	r := h.do("POST", "/keys/app.key/requestToken", "", vectors[0])
	if r.status != 401 || r.errCode(t) != 40105 {
		t.Fatalf("replay: %d %s", r.status, r.body)
	}
}

func TestTokenRequestRejections(t *testing.T) {
	h := newHarness(t)
	now := h.now().UnixMilli()
	tamper := strings.Replace(signedTokenRequest("", "", "A", now, "nonce-tamper-0001"), `"A"`, `"B"`, 1)
	cases := []struct {
		name   string
		body   string
		status int
		code   int
	}{
		{"bad mac", tamper, 401, 40101},
		{"wrong secret", strings.Replace(signedTokenRequest("", "", "", now, "nonce-wrong-00001"), `"mac":"`, `"mac":"x`, 1), 401, 40101},
		{"timestamp too old", signedTokenRequest("", "", "", now-3*60*1000, "nonce-old-0000001"), 401, 40104},
		{"timestamp in future", signedTokenRequest("", "", "", now+3*60*1000, "nonce-future-0001"), 401, 40104},
		{"ttl over 24h", signedTokenRequest("86400001", "", "", now, "nonce-ttl-0000001"), 400, 40003},
		{"bad capability", signedTokenRequest("", `{"x":[]}`, "", now, "nonce-cap-0000001"), 400, 40000},
		{"short nonce", signedTokenRequest("", "", "", now, "short"), 400, 40003},
	}
	for _, c := range cases {
		r := h.do("POST", "/keys/app.key/requestToken", "", c.body)
		if r.status != c.status || r.errCode(t) != c.code {
			t.Errorf("%s: got %d %s, want %d/%d", c.name, r.status, r.body, c.status, c.code)
		}
	}
	r := h.do("POST", "/keys/other.key/requestToken", "", signedTokenRequest("", "", "", now, "nonce-other-00001"))
	if r.status != 404 || r.errCode(t) != 40400 {
		t.Errorf("unknown key: %d %s", r.status, r.body)
	}
	// Within ±2 minutes is fine; an explicit ttl is honoured.
	r = h.do("POST", "/keys/app.key/requestToken", "", signedTokenRequest("60000", "", "", now-110*1000, "nonce-edge-000001"))
	var td tokenDetails
	r.json(t, &td)
	if r.status != 200 || td.Expires-td.Issued != 60000 {
		t.Errorf("ttl 60000: %d %s", r.status, r.body)
	}
	// An unsigned TokenRequest needs Basic auth for the key.
	unsigned := `{"keyName":"app.key","clientId":"C","capability":"{\"a\":[\"publish\"]}"}`
	if r := h.do("POST", "/keys/app.key/requestToken", "", unsigned); r.status != 401 || r.errCode(t) != 40101 {
		t.Errorf("unsigned without auth: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/keys/app.key/requestToken", basicAuth(), unsigned); r.status != 200 {
		t.Errorf("unsigned with Basic: %d %s", r.status, r.body)
	}
}

func TestBasicAuth(t *testing.T) {
	h := newHarness(t)
	if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n","data":"d"}`); r.status != 201 {
		t.Fatalf("basic: %d %s", r.status, r.body)
	}
	wrong := "Basic " + base64.StdEncoding.EncodeToString([]byte("app.key:nope"))
	if r := h.do("POST", "/channels/c/messages", wrong, `{"name":"n"}`); r.status != 401 || r.errCode(t) != 40101 {
		t.Fatalf("wrong secret: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", "", `{"name":"n"}`); r.status != 401 || r.errCode(t) != 40101 {
		t.Fatalf("no auth: %d %s", r.status, r.body)
	}
}

func TestBearerTokensBase64AndRawAndKeyHolderJWTs(t *testing.T) {
	h := newHarness(t)
	tok := h.token("", "")
	for _, auth := range []string{bearer(tok), "Bearer " + tok} {
		if r := h.do("POST", "/channels/c/messages", auth, `{"name":"n"}`); r.status != 201 {
			t.Fatalf("%q: %d %s", auth[:12], r.status, r.body)
		}
	}
	iat := h.now().Unix()
	good := keyHolderJWT(testSecret, map[string]any{"iat": iat, "exp": iat + 600,
		"x-ably-capability": `{"jobs:*":["publish"]}`, "x-ably-clientId": "server"})
	if r := h.do("POST", "/channels/jobs:1/messages", bearer(good), `{"name":"n"}`); r.status != 201 {
		t.Fatalf("key-holder JWT: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/other/messages", bearer(good), `{"name":"n"}`); r.status != 401 || r.errCode(t) != 40160 {
		t.Fatalf("key-holder JWT outside capability: %d %s", r.status, r.body)
	}
	forged := keyHolderJWT("not-the-secret", map[string]any{"iat": iat, "exp": iat + 600})
	if r := h.do("POST", "/channels/c/messages", bearer(forged), `{"name":"n"}`); r.status != 401 || r.errCode(t) != 40144 {
		t.Fatalf("forged JWT: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", bearer("opaque-token"), `{"name":"n"}`); r.status != 401 || r.errCode(t) != 40143 {
		t.Fatalf("opaque token: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/channels/c/messages?access_token="+tok, "", ""); r.status != 200 {
		t.Fatalf("access_token query: %d %s", r.status, r.body)
	}
}

func TestExpiredTokenIs40142(t *testing.T) {
	h := newHarness(t)
	tok := h.token("", "")
	h.advance(time.Hour)
	r := h.do("POST", "/channels/c/messages", bearer(tok), `{"name":"n"}`)
	if r.status != 401 || r.errCode(t) != 40142 {
		t.Fatalf("expired: %d %s", r.status, r.body)
	}
	iat := h.now().Unix() - 100
	old := keyHolderJWT(testSecret, map[string]any{"iat": iat, "exp": iat + 10})
	if r := h.do("GET", "/channels/c/messages", bearer(old), ""); r.status != 401 || r.errCode(t) != 40142 {
		t.Fatalf("expired key-holder JWT: %d %s", r.status, r.body)
	}
}

func TestMatchResource(t *testing.T) {
	cases := []struct {
		pattern, channel string
		want             bool
	}{
		{"*", "anything:at:all", true},
		{"user:A", "user:A", true},
		{"user:A", "user:B", false},
		{"user:A", "user:A:x", false},
		{"user:*", "user:A", true},
		{"user:*", "user:A:x", true},
		{"user:*", "user", false},
		{"user:*", "users:A", false},
		{"foo*", "foobar", false},
		{"foo*", "foo*", true},
		{"a:*:c", "a:b:c", true},
		{"a:*:c", "a:b:d", false},
	}
	for _, c := range cases {
		if got := matchResource(c.pattern, c.channel); got != c.want {
			t.Errorf("matchResource(%q, %q) = %v", c.pattern, c.channel, got)
		}
	}
	cp := capability{"user:A": {"subscribe"}, "feed:*": {"history", "publish"}, "all": {"*"}}
	for _, c := range []struct {
		ch, op string
		want   bool
	}{{"user:A", "publish", false}, {"user:A", "subscribe", true}, {"feed:x", "publish", true},
		{"feed:x", "history", true}, {"feed:x", "presence", false}, {"all", "history", true}} {
		if got := cp.allows(c.ch, c.op); got != c.want {
			t.Errorf("allows(%q, %q) = %v", c.ch, c.op, got)
		}
	}
}

func TestCapabilityEnforcedOnPublishAndHistory(t *testing.T) {
	h := newHarness(t)
	mobile := h.token(`{"user:A":["subscribe"]}`, "A")
	for _, ch := range []string{"user:B", "user:A"} {
		r := h.do("POST", "/channels/"+ch+"/messages", bearer(mobile), `{"name":"n"}`)
		if r.status != 401 || r.errCode(t) != 40160 {
			t.Fatalf("publish %s: %d %s", ch, r.status, r.body)
		}
	}
	if r := h.do("GET", "/channels/user:A/messages", bearer(mobile), ""); r.status != 401 || r.errCode(t) != 40160 {
		t.Fatalf("history without capability: %d %s", r.status, r.body)
	}
	reader := h.token(`{"user:A":["subscribe","history"]}`, "A")
	if r := h.do("GET", "/channels/user:A/messages", bearer(reader), ""); r.status != 200 {
		t.Fatalf("history with capability: %d %s", r.status, r.body)
	}
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(t, &st)
	if st["refused"] != 2 || st["accepted"] != 0 {
		t.Fatalf("stats %v", st)
	}
}

func TestClientIdRules(t *testing.T) {
	h := newHarness(t)
	tok := h.token(`{"*":["publish","history"]}`, "A")
	if r := h.do("POST", "/channels/c/messages", bearer(tok), `{"name":"n","clientId":"B"}`); r.status != 400 || r.errCode(t) != 40012 {
		t.Fatalf("mismatched clientId: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", bearer(tok), `{"name":"n"}`); r.status != 201 {
		t.Fatalf("implicit clientId: %d %s", r.status, r.body)
	}
	var items []historyItem
	h.do("GET", "/channels/c/messages", bearer(tok), "").json(t, &items)
	if len(items) != 1 || items[0].ClientID != "A" {
		t.Fatalf("history %+v", items)
	}
	if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n","clientId":"anyone"}`); r.status != 201 {
		t.Fatalf("key holder claiming a clientId: %d %s", r.status, r.body)
	}
}

func TestPublishResponseAndChannelNameDecoding(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/channels/orders:42%2Fx/messages", basicAuth(), `[{"name":"a","data":"1"},{"name":"b","data":"2"}]`)
	var pr publishResponse
	r.json(t, &pr)
	if r.status != 201 || pr.Channel != "orders:42/x" || pr.MessageID == "" || len(pr.Serials) != 2 || pr.Serials[0] >= pr.Serials[1] {
		t.Fatalf("publish: %d %s", r.status, r.body)
	}
	var items []historyItem
	h.do("GET", "/channels/orders:42%2Fx/messages?direction=forwards", basicAuth(), "").json(t, &items)
	if len(items) != 2 || items[0].ID != pr.MessageID+":0" || items[1].ID != pr.MessageID+":1" || items[0].Serial != pr.Serials[0] {
		t.Fatalf("server-assigned ids: %+v vs %+v", items, pr)
	}
	for _, bad := range []string{"%3Ax", "%5Bmeta%5Dx", "a%0Ab"} {
		if r := h.do("POST", "/channels/"+bad+"/messages", basicAuth(), `{"name":"n"}`); r.status != 400 || r.errCode(t) != 40010 {
			t.Errorf("channel %s: %d %s", bad, r.status, r.body)
		}
	}
}

func TestPublishIsJSONOnly(t *testing.T) {
	h := newHarness(t)
	r := h.do("POST", "/channels/c/messages", basicAuth(), "\x81\xa4name\xa1n", "Content-Type", "application/x-msgpack")
	if r.status != 415 || r.errCode(t) != 40004 || !strings.Contains(string(r.body), "use_binary_protocol=False") {
		t.Fatalf("msgpack: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n"}`, "Content-Type", "application/json; charset=utf-8"); r.status != 201 {
		t.Fatalf("json with charset: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":`); r.status != 400 || r.errCode(t) != 40001 {
		t.Fatalf("invalid json: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":5}`); r.status != 400 || r.errCode(t) != 40001 {
		t.Fatalf("name not a string: %d %s", r.status, r.body)
	}
	big := `{"name":"n","data":"` + strings.Repeat("x", 64*1024) + `"}`
	if r := h.do("POST", "/channels/c/messages", basicAuth(), big); r.status != 413 || r.errCode(t) != 40009 {
		t.Fatalf("oversize: %d %.200s", r.status, r.body)
	}
}

func TestIdempotentPublish(t *testing.T) {
	h := newHarness(t)
	msg := `{"id":"evt-123","name":"order.created","data":"{\"a\": 1}","encoding":"json"}`
	r1 := h.do("POST", "/channels/orders/messages", basicAuth(), msg)
	r2 := h.do("POST", "/channels/orders/messages", basicAuth(), msg)
	if r1.status != 201 || r2.status != 201 || string(r1.body) != string(r2.body) {
		t.Fatalf("duplicate publish: %d %s / %d %s", r1.status, r1.body, r2.status, r2.body)
	}
	// The same id on another channel is a different message.
	h.do("POST", "/channels/other/messages", basicAuth(), msg)
	var all []historyItem
	h.do("GET", "/_standin/messages", "", "").json(t, &all)
	if len(all) != 2 || all[0].Channel != "orders" || all[1].Channel != "other" {
		t.Fatalf("stored %+v", all)
	}
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(t, &st)
	if st["accepted"] != 2 || st["deduplicated"] != 1 {
		t.Fatalf("stats %v", st)
	}
	// After the 2-minute window the id is forgotten.
	h.advance(119 * time.Second)
	h.do("POST", "/channels/orders/messages", basicAuth(), msg)
	h.advance(2 * time.Second)
	h.do("POST", "/channels/orders/messages", basicAuth(), msg)
	var items []historyItem
	h.do("GET", "/channels/orders/messages", basicAuth(), "").json(t, &items)
	if len(items) != 2 {
		t.Fatalf("after window: %d items", len(items))
	}
}

func TestMultiMessageIds(t *testing.T) {
	h := newHarness(t)
	good := `[{"id":"b:0","name":"x"},{"id":"b:1","name":"y"}]`
	r := h.do("POST", "/channels/c/messages", basicAuth(), good)
	var pr publishResponse
	r.json(t, &pr)
	if r.status != 201 || pr.MessageID != "b" {
		t.Fatalf("good ids: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/channels/c/messages", basicAuth(), good); r.status != 201 {
		t.Fatalf("repeat: %d %s", r.status, r.body)
	}
	for _, bad := range []string{
		`[{"id":"x","name":"x"},{"id":"y","name":"y"}]`,
		`[{"id":"b:0","name":"x"},{"name":"y"}]`,
		`[{"id":"b:0","name":"x"},{"id":"c:1","name":"y"}]`,
		`[{"id":"b:0","name":"x"},{"id":"b:x","name":"y"}]`,
	} {
		if r := h.do("POST", "/channels/c/messages", basicAuth(), bad); r.status != 400 || r.errCode(t) != 40031 {
			t.Errorf("%s: %d %s", bad, r.status, r.body)
		}
	}
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(t, &st)
	if st["accepted"] != 2 || st["deduplicated"] != 2 || st["refused"] != 4 {
		t.Fatalf("stats %v", st)
	}
}

func TestHistory(t *testing.T) {
	h := newHarness(t)
	bodies := []string{`{"id":"m1","name":"n","data":{"k": [1, 2]}}`, `{"id":"m2","data":"plain"}`,
		`{"id":"m3","data":"AAE=","encoding":"base64","extras":{"headers":{"h":"v"}}}`}
	for _, b := range bodies {
		h.do("POST", "/channels/h/messages", basicAuth(), b)
		h.advance(time.Millisecond)
	}
	var items []historyItem
	r := h.do("GET", "/channels/h/messages", basicAuth(), "")
	r.json(t, &items)
	if len(items) != 3 || items[0].ID != "m3" || items[2].ID != "m1" {
		t.Fatalf("backwards: %s", r.body)
	}
	if string(items[2].Data) != `{"k":[1,2]}` || string(items[1].Data) != `"plain"` || items[0].Encoding != "base64" ||
		string(items[0].Extras) != `{"headers":{"h":"v"}}` || items[0].Timestamp != items[2].Timestamp+2 {
		t.Fatalf("fields: %s", r.body)
	}
	r = h.do("GET", "/channels/h/history?direction=forwards&limit=2", basicAuth(), "")
	r.json(t, &items)
	if len(items) != 2 || items[0].ID != "m1" || items[1].ID != "m2" {
		t.Fatalf("forwards limit 2: %s", r.body)
	}
	link := r.header.Get("Link")
	i, j := strings.Index(link, `<./history?`), strings.Index(link, `>; rel="next"`)
	if i < 0 || j < 0 {
		t.Fatalf("Link %q", link)
	}
	next := link[strings.LastIndex(link[:j], "<")+3 : j] // "<./history?..." -> "history?..."
	r = h.do("GET", "/channels/h/"+next, basicAuth(), "")
	r.json(t, &items)
	if len(items) != 1 || items[0].ID != "m3" || strings.Contains(r.header.Get("Link"), `rel="next"`) {
		t.Fatalf("next page: %s %q", r.body, r.header.Get("Link"))
	}
	if r := h.do("GET", "/channels/h/messages?limit=1001", basicAuth(), ""); r.status != 400 || r.errCode(t) != 40003 {
		t.Fatalf("limit 1001: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/channels/empty/messages", basicAuth(), "")
	if r.status != 200 || strings.TrimSpace(string(r.body)) != "[]" {
		t.Fatalf("empty channel: %d %s", r.status, r.body)
	}
}

func TestBatchPublish(t *testing.T) {
	h := newHarness(t)
	body := `[{"channels":["a","b"],"messages":[{"id":"x1","name":"n","data":{"v":1}}]},
	          {"channels":"c","messages":{"id":"x2","data":"s"}}]`
	r := h.do("POST", "/messages", basicAuth(), body, "X-Ably-Version", "3")
	var ok []batchResult
	r.json(t, &ok)
	if r.status != 201 || len(ok) != 3 || ok[0].Channel != "a" || ok[0].MessageID != "x1" || ok[2].Channel != "c" || ok[2].MessageID != "x2" {
		t.Fatalf("batch: %d %s", r.status, r.body)
	}
	r2 := h.do("POST", "/messages", basicAuth(), body)
	if r2.status != 201 || string(r2.body) != string(r.body) {
		t.Fatalf("batch repeat: %d %s", r2.status, r2.body)
	}
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(t, &st)
	if st["accepted"] != 3 || st["deduplicated"] != 3 {
		t.Fatalf("stats %v", st)
	}

	// Partial failure: capability refused on one channel.
	tok := h.token(`{"ok:*":["publish"]}`, "")
	r = h.do("POST", "/messages", bearer(tok), `{"channels":["ok:1","no:1"],"messages":{"name":"n"}}`)
	if r.status != 400 || r.errCode(t) != 40020 {
		t.Fatalf("partial: %d %s", r.status, r.body)
	}
	var partial struct {
		Error         ablyError     `json:"error"`
		BatchResponse []batchResult `json:"batchResponse"`
	}
	r.json(t, &partial)
	if partial.Error.Message != "Batched response includes errors" || len(partial.BatchResponse) != 2 ||
		partial.BatchResponse[0].MessageID == "" || partial.BatchResponse[1].Error == nil ||
		partial.BatchResponse[1].Error.Code != 40160 || partial.BatchResponse[1].Channel != "no:1" {
		t.Fatalf("partial body: %s", r.body)
	}

	// Limits.
	chans := make([]string, 101)
	for i := range chans {
		chans[i] = fmt.Sprintf("ch%d", i)
	}
	cj, _ := json.Marshal(chans)
	if r := h.do("POST", "/messages", basicAuth(), `{"channels":`+string(cj)+`,"messages":{"name":"n"}}`); r.status != 400 || r.errCode(t) == 0 {
		t.Fatalf("101 channels: %d %s", r.status, r.body)
	}
	msgs := strings.TrimSuffix(strings.Repeat(`{"name":"n"},`, 1001), ",")
	if r := h.do("POST", "/messages", basicAuth(), `{"channels":"c","messages":[`+msgs+`]}`); r.status != 400 || r.errCode(t) != 40000 {
		t.Fatalf("1001 messages: %d %.200s", r.status, r.body)
	}
	if r := h.do("POST", "/messages", basicAuth(), `{"channels":[],"messages":{"name":"n"}}`); r.status != 400 {
		t.Fatalf("no channels: %d %s", r.status, r.body)
	}
}

func TestStandinMessagesAfterACursorSurviveAReset(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/messages", basicAuth(), `{"channels":["one","two"],"messages":{"name":"1"}}`)
	var all []historyItem
	r := h.do("GET", "/_standin/messages?after=0", "", "")
	r.json(t, &all)
	if len(all) != 2 || r.header.Get("X-Standin-Last-Event") != "2" {
		t.Fatalf("from the start: %d messages, cursor %q", len(all), r.header.Get("X-Standin-Last-Event"))
	}
	h.do("DELETE", "/_standin/messages", "", "")
	h.do("POST", "/channels/three/messages", basicAuth(), `{"name":"2"}`)
	r = h.do("GET", "/_standin/messages?after=2", "", "")
	r.json(t, &all)
	if len(all) != 1 || all[0].Channel != "three" || r.header.Get("X-Standin-Last-Event") != "3" {
		t.Fatalf("after the cursor, across a reset: %+v, cursor %q", all, r.header.Get("X-Standin-Last-Event"))
	}
	r = h.do("GET", "/_standin/messages?after=3", "", "")
	r.json(t, &all)
	if len(all) != 0 {
		t.Fatalf("nothing new: %+v", all)
	}
	for _, bad := range []string{"-1", "x"} {
		if r := h.do("GET", "/_standin/messages?after="+bad, "", ""); r.status != 400 {
			t.Fatalf("after=%s: %d", bad, r.status)
		}
	}
}

func TestStandinMessagesStatsReset(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/channels/one/messages", basicAuth(), `{"name":"1"}`)
	h.do("POST", "/messages", basicAuth(), `{"channels":["two","one"],"messages":{"name":"2"}}`)
	var all []historyItem
	h.do("GET", "/_standin/messages", "", "").json(t, &all)
	if len(all) != 3 || all[0].Channel != "one" || all[1].Channel != "two" || all[2].Channel != "one" || all[2].Name != "2" {
		t.Fatalf("acceptance order: %+v", all)
	}
	h.do("GET", "/_standin/messages?channel=two", "", "").json(t, &all)
	if len(all) != 1 {
		t.Fatalf("filter: %+v", all)
	}
	if r := h.do("DELETE", "/_standin/messages", "", ""); r.status != 204 {
		t.Fatalf("reset: %d", r.status)
	}
	h.do("GET", "/_standin/messages", "", "").json(t, &all)
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(t, &st)
	if len(all) != 0 || st["accepted"] != 0 {
		t.Fatalf("after reset: %+v %v", all, st)
	}
}

func TestFaultInjection(t *testing.T) {
	h := newHarness(t)
	if r := h.do("POST", "/_standin/faults", "", `{"status":503,"count":2}`); r.status != 200 {
		t.Fatalf("set fault: %d %s", r.status, r.body)
	}
	for i := 0; i < 2; i++ {
		if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n"}`); r.status != 503 || r.errCode(t) != 50004 {
			t.Fatalf("fault %d: %d %s", i, r.status, r.body)
		}
	}
	if r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n"}`); r.status != 201 {
		t.Fatalf("after faults: %d %s", r.status, r.body)
	}
	h.do("POST", "/_standin/faults", "", `{"status":500,"count":1}`)
	if r := h.do("POST", "/messages", basicAuth(), `{"channels":"c","messages":{"name":"n"}}`); r.status != 500 || r.errCode(t) != 50000 {
		t.Fatalf("batch fault: %d %s", r.status, r.body)
	}
	h.do("POST", "/_standin/faults", "", `{"status":429,"count":1}`)
	r := h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n"}`)
	if r.status != 429 || r.errCode(t) != 42910 || r.header.Get("Retry-After") != "1" {
		t.Fatalf("429: %d %v %s", r.status, r.header, r.body)
	}
	for _, bad := range []string{`{"status":404,"count":1}`, `{"status":503}`, `{"status":0}`, `{"count":1}`, `{"status":503,"count":1,"x":1}`} {
		if r := h.do("POST", "/_standin/faults", "", bad); r.status != 400 {
			t.Errorf("%s accepted: %d", bad, r.status)
		}
	}

	// Drop connections for S seconds: requests get no answer at all.
	h.do("POST", "/_standin/faults", "", `{"status":0,"seconds":5}`)
	req, _ := http.NewRequest("POST", h.ts.URL+"/channels/c/messages", strings.NewReader(`{"name":"n"}`))
	req.Header.Set("Authorization", basicAuth())
	req.Header.Set("Content-Type", "application/json")
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	if res, err := client.Do(req); err == nil {
		res.Body.Close()
		t.Fatalf("dropped request answered: %d", res.StatusCode)
	}
	if r := h.do("GET", "/healthz", "", ""); r.status != 200 {
		t.Fatalf("healthz during drop: %d", r.status)
	}
	h.advance(5 * time.Second)
	if r := h.do("GET", "/time", "", ""); r.status != 200 {
		t.Fatalf("after drop window: %d", r.status)
	}
	var st map[string]int
	h.do("GET", "/_standin/stats", "", "").json(t, &st)
	if st["faulted"] != 4 || st["dropped"] != 1 || st["accepted"] != 1 {
		t.Fatalf("stats %v", st)
	}
}

func TestLogsNeverContainSecretsOrTokens(t *testing.T) {
	h := newHarness(t)
	tok := h.token("", "A")
	h.do("POST", "/channels/c/messages", bearer(tok), `{"name":"n"}`)
	h.do("GET", "/channels/c/messages?access_token="+tok, "", "")
	h.do("POST", "/channels/c/messages", basicAuth(), `{"name":"n"}`)
	h.do("POST", "/channels/c/messages", "Basic "+base64.StdEncoding.EncodeToString([]byte("app.key:wrong-secret")), `{}`)
	logs := h.logBuf.String()
	if n := strings.Count(logs, "\n"); n != 5 {
		t.Errorf("want one log line per request (5), got %d:\n%s", n, logs)
	}
	for _, secret := range []string{testSecret, "wrong-secret", tok, strings.Split(tok, ".")[2],
		base64.StdEncoding.EncodeToString([]byte(tok))[:20], base64.StdEncoding.EncodeToString([]byte(testKey))} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains a secret or token fragment %q:\n%s", secret, logs)
		}
	}
}

// TestRunEntryPoint runs the real entry point (flags, env key, --addr-file)
// on an ephemeral port and stops it with SIGINT.
func TestRunEntryPoint(t *testing.T) {
	t.Setenv(keyEnv, "")
	if code := run([]string{"--listen", "127.0.0.1:0"}); code != 2 {
		t.Fatalf("missing key: exit %d, want 2", code)
	}
	t.Setenv(keyEnv, testKey)
	addrFile := filepath.Join(t.TempDir(), "addr")
	done := make(chan int, 1)
	go func() { done <- run([]string{"--listen", "127.0.0.1:0", "--addr-file", addrFile}) }()
	var addr string
	for i := 0; i < 100 && addr == ""; i++ {
		time.Sleep(20 * time.Millisecond)
		b, _ := os.ReadFile(addrFile)
		addr = strings.TrimSpace(string(b))
	}
	if addr == "" {
		t.Fatal("no address written")
	}
	res, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz %d", res.StatusCode)
	}
	// An open SSE stream must not hold up the graceful shutdown (5 s timeout).
	stream, err := http.Get("http://" + addr + "/sse?channels=c&v=1.2&key=" + testKey)
	if err != nil || stream.StatusCode != 200 {
		t.Fatalf("sse: %v %v", err, stream)
	}
	defer stream.Body.Close()
	p, _ := os.FindProcess(os.Getpid())
	start := time.Now()
	_ = p.Signal(os.Interrupt)
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d", code)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Fatalf("shutdown took %s: the SSE stream was not ended", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop on SIGINT")
	}
	if _, err := io.ReadAll(stream.Body); err != nil {
		t.Fatalf("SSE stream did not end cleanly: %v", err)
	}
}
