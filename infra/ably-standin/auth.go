package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// principal is an authenticated caller.
type principal struct {
	clientID   string // "" = anonymous; "*" = may claim any client id
	viaKey     bool   // Basic auth with the API key (may claim any client id)
	capability capability
	expires    time.Time // token expiry, which ends SSE streams; zero for the key
}

// ---- capabilities ----

// capability maps a resource pattern to operations, e.g. {"user:*":["subscribe"]}.
type capability map[string][]string

var fullCapability = capability{"*": {"*"}}

// parseCapability validates Ably's capability JSON: an object of resource
// name -> non-empty array of operation strings.
func parseCapability(s string) (capability, error) {
	var c capability
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("capability must be a JSON object of resource -> [operations]: %v", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("capability has trailing data")
	}
	if len(c) == 0 {
		return nil, fmt.Errorf("capability is empty")
	}
	for res, ops := range c {
		if res == "" {
			return nil, fmt.Errorf("capability has an empty resource name")
		}
		if len(ops) == 0 {
			return nil, fmt.Errorf("capability for %q lists no operations", res)
		}
		for _, op := range ops {
			if op == "" {
				return nil, fmt.Errorf("capability for %q has an empty operation", res)
			}
		}
	}
	return c, nil
}

func (c capability) allows(channel, op string) bool {
	for pattern, ops := range c {
		if !matchResource(pattern, channel) {
			continue
		}
		for _, o := range ops {
			if o == "*" || o == op {
				return true
			}
		}
	}
	return false
}

// matchResource applies Ably's channel pattern rules: "*" alone matches every
// channel; otherwise "*" may only stand for whole ':'-separated segments, and a
// trailing "*" matches one or more remaining segments ("user:*" matches
// "user:a" and "user:a:b" but not "user"). "foo*" is a literal name.
func matchResource(pattern, channel string) bool {
	if pattern == "*" || pattern == channel {
		return true
	}
	ps, cs := strings.Split(pattern, ":"), strings.Split(channel, ":")
	for i, p := range ps {
		if i >= len(cs) {
			return false
		}
		if p == "*" {
			if i == len(ps)-1 {
				return true // trailing wildcard: one or more segments
			}
			continue // inner wildcard: exactly one segment
		}
		if p != cs[i] {
			return false
		}
	}
	return len(cs) == len(ps)
}

// ---- request authentication ----

func (s *Server) authenticate(r *http.Request) (*principal, *ablyError) {
	h := r.Header.Get("Authorization")
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch {
	case strings.EqualFold(scheme, "Basic") && cred != "":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return nil, newErr(401, 40101, "invalid Basic credentials encoding")
		}
		p, e := s.authKey(r, string(raw))
		if e != nil {
			return nil, e
		}
		// ably-python/ably-js send X-Ably-ClientId: base64(clientId) with Basic auth.
		if v := r.Header.Get("X-Ably-ClientId"); v != "" {
			cid, err := base64.StdEncoding.DecodeString(v)
			if err != nil || len(cid) == 0 {
				return nil, newErr(400, 40012, "invalid X-Ably-ClientId header (want base64 of the client id)")
			}
			p.clientID = string(cid)
		}
		return p, nil
	case strings.EqualFold(scheme, "Bearer") && cred != "":
		return s.authToken(r, cred)
	case h == "" && r.URL.Query().Get("access_token") != "":
		return s.authToken(r, r.URL.Query().Get("access_token"))
	case h == "":
		return nil, newErr(401, 40101, "no credentials: use Authorization: Basic (API key) or Bearer (token)")
	default:
		return nil, newErr(401, 40101, "unsupported Authorization scheme %q", scheme)
	}
}

// authKey checks a whole API key "keyName:secret" (from Basic auth, or SSE's ?key=).
func (s *Server) authKey(r *http.Request, key string) (*principal, *ablyError) {
	name, secret, _ := strings.Cut(key, ":")
	if !s.keyMatches(name, secret) {
		setWho(r, "basic(invalid)")
		return nil, newErr(401, 40101, "invalid credentials: unknown key or wrong secret")
	}
	setWho(r, "basic("+name+")")
	return &principal{viaKey: true, capability: fullCapability}, nil
}

func (s *Server) keyMatches(name, secret string) bool {
	okName := subtle.ConstantTimeCompare([]byte(name), []byte(s.key.Name)) == 1
	okSecret := subtle.ConstantTimeCompare([]byte(secret), []byte(s.key.Secret)) == 1
	return okName && okSecret
}

func (s *Server) authToken(r *http.Request, cred string) (*principal, *ablyError) {
	tok := cred
	if strings.Count(tok, ".") != 2 {
		// ably-python and ably-js send base64(token) in the Bearer header.
		tok = ""
		for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
			if b, err := enc.DecodeString(cred); err == nil && strings.Count(string(b), ".") == 2 {
				tok = string(b)
				break
			}
		}
		if tok == "" {
			setWho(r, "token(unrecognised)")
			return nil, newErr(401, 40143, "token unrecognised: ably-standin only accepts JWTs (its own from requestToken, or HS256 JWTs signed with the API key)")
		}
	}
	c, e := s.verifyJWT(tok)
	if e != nil {
		setWho(r, "token(rejected)")
		return nil, e
	}
	who := "token(" + s.key.Name
	if c.clientID != "" {
		who += " clientId=" + c.clientID
	}
	setWho(r, who+")")
	return c, nil
}

// ---- JWTs (HS256, kid = key name, Ably claims) ----

var b64url = base64.RawURLEncoding

func (s *Server) signJWT(claims map[string]any) (string, error) {
	hdr, _ := json.Marshal(map[string]string{"alg": "HS256", "typ": "JWT", "kid": s.key.Name})
	body, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	signing := b64url.EncodeToString(hdr) + "." + b64url.EncodeToString(body)
	mac := hmac.New(sha256.New, []byte(s.key.Secret))
	mac.Write([]byte(signing))
	return signing + "." + b64url.EncodeToString(mac.Sum(nil)), nil
}

func (s *Server) verifyJWT(tok string) (*principal, *ablyError) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, newErr(401, 40144, "invalid JWT format")
	}
	var hdr struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	hb, err := b64url.DecodeString(strings.TrimRight(parts[0], "="))
	if err != nil || json.Unmarshal(hb, &hdr) != nil {
		return nil, newErr(401, 40144, "invalid JWT format: bad header")
	}
	if hdr.Alg != "HS256" {
		return nil, newErr(401, 40144, "invalid JWT: alg %q not supported (HS256 only)", hdr.Alg)
	}
	if hdr.Kid != "" && hdr.Kid != s.key.Name {
		return nil, newErr(401, 40101, "invalid JWT: kid does not name a known key")
	}
	sig, err := b64url.DecodeString(strings.TrimRight(parts[2], "="))
	if err != nil {
		return nil, newErr(401, 40144, "invalid JWT format: bad signature encoding")
	}
	mac := hmac.New(sha256.New, []byte(s.key.Secret))
	mac.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(sig, mac.Sum(nil)) {
		return nil, newErr(401, 40144, "invalid JWT: signature does not verify with the key secret")
	}
	cb, err := b64url.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, newErr(401, 40144, "invalid JWT format: bad claims encoding")
	}
	var claims map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(cb))
	dec.UseNumber()
	if err := dec.Decode(&claims); err != nil {
		return nil, newErr(401, 40144, "invalid JWT format: claims are not a JSON object")
	}
	num := func(name string) (float64, bool) {
		var n json.Number
		if raw, ok := claims[name]; !ok || json.Unmarshal(raw, &n) != nil {
			return 0, false
		}
		f, err := n.Float64()
		return f, err == nil
	}
	if _, ok := num("iat"); !ok {
		return nil, newErr(401, 40144, "invalid JWT: iat claim required")
	}
	exp, ok := num("exp")
	if !ok {
		return nil, newErr(401, 40144, "invalid JWT: exp claim required")
	}
	if float64(s.now().UnixMilli())/1000 >= exp {
		return nil, newErr(401, 40142, "token expired")
	}
	if _, ok := claims["x-ably-token"]; ok {
		return nil, newErr(401, 40144, "JWTs embedding an Ably token (x-ably-token) are not supported by ably-standin")
	}
	p := &principal{capability: fullCapability, expires: time.UnixMilli(int64(exp * 1000))}
	if raw, ok := claims["x-ably-capability"]; ok {
		var cs string
		if err := json.Unmarshal(raw, &cs); err != nil {
			return nil, newErr(401, 40144, "invalid JWT: x-ably-capability must be a JSON string")
		}
		c, err := parseCapability(cs)
		if err != nil {
			return nil, newErr(401, 40144, "invalid JWT: x-ably-capability: %v", err)
		}
		p.capability = c
	}
	if raw, ok := claims["x-ably-clientId"]; ok {
		var cid *string
		if err := json.Unmarshal(raw, &cid); err != nil {
			return nil, newErr(401, 40144, "invalid JWT: x-ably-clientId must be a string")
		}
		if cid != nil {
			p.clientID = *cid
		}
	}
	return p, nil
}

// ---- POST /keys/{keyName}/requestToken ----

// flexInt accepts a JSON number, a numeric string, or null.
type flexInt struct {
	v   int64
	set bool
}

func (f *flexInt) UnmarshalJSON(b []byte) error {
	s := strings.TrimSpace(string(b))
	if s == "null" {
		return nil
	}
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
		if s == "" {
			return nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		fl, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || fl != float64(int64(fl)) {
			return fmt.Errorf("not an integer: %s", s)
		}
		n = int64(fl)
	}
	f.v, f.set = n, true
	return nil
}

type tokenRequest struct {
	KeyName    string  `json:"keyName"`
	TTL        flexInt `json:"ttl"`
	Capability *string `json:"capability"`
	ClientID   *string `json:"clientId"`
	Timestamp  flexInt `json:"timestamp"`
	Nonce      string  `json:"nonce"`
	MAC        string  `json:"mac"`
}

// macText is what Ably SDKs sign: keyName, ttl, capability, clientId,
// timestamp, nonce, each followed by "\n", absent values as "" (ably-python
// 3.1.4 TokenRequest.sign_request: `ttl or ""`, so a ttl of 0 is "").
func (tr *tokenRequest) macText() string {
	ttl := ""
	if tr.TTL.set && tr.TTL.v != 0 {
		ttl = strconv.FormatInt(tr.TTL.v, 10)
	}
	deref := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	return tr.KeyName + "\n" + ttl + "\n" + deref(tr.Capability) + "\n" + deref(tr.ClientID) + "\n" +
		strconv.FormatInt(tr.Timestamp.v, 10) + "\n" + tr.Nonce + "\n"
}

func tokenRequestMAC(secret, text string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(text))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

type tokenDetails struct {
	Token      string `json:"token"`
	KeyName    string `json:"keyName"`
	Issued     int64  `json:"issued"`
	Expires    int64  `json:"expires"`
	Capability string `json:"capability"`
	ClientID   string `json:"clientId,omitempty"`
}

func (s *Server) handleRequestToken(w http.ResponseWriter, r *http.Request, keyName string) {
	td, e := s.requestToken(r, keyName)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, 200, td)
}

func (s *Server) requestToken(r *http.Request, keyName string) (*tokenDetails, *ablyError) {
	setWho(r, "token-request("+keyName+")")
	if keyName != s.key.Name {
		return nil, newErr(404, 40400, "no such key %q", keyName)
	}
	body, e := readJSONBody(r)
	if e != nil {
		return nil, e
	}
	var tr tokenRequest
	if err := json.Unmarshal(body, &tr); err != nil {
		return nil, newErr(400, 40001, "invalid TokenRequest: %v", err)
	}
	if tr.KeyName != "" && tr.KeyName != keyName {
		return nil, newErr(400, 40000, "TokenRequest keyName %q does not match the URL's %q", tr.KeyName, keyName)
	}
	tr.KeyName = keyName
	now := s.now()

	if tr.MAC == "" {
		// An unsigned TokenRequest is allowed only with Basic auth for this key.
		p, e := s.authenticate(r)
		if e != nil || !p.viaKey {
			return nil, newErr(401, 40101, "TokenRequest has no mac; sign it or send Basic auth with the key")
		}
	} else {
		want := tokenRequestMAC(s.key.Secret, tr.macText())
		if !hmac.Equal([]byte(want), []byte(tr.MAC)) {
			return nil, newErr(401, 40101, "invalid TokenRequest: mac does not match (wrong key secret or altered fields)")
		}
		if !tr.Timestamp.set {
			return nil, newErr(401, 40104, "TokenRequest timestamp missing")
		}
		skew := now.Sub(time.UnixMilli(tr.Timestamp.v))
		if skew > tokenRequestWindow || skew < -tokenRequestWindow {
			return nil, newErr(401, 40104, "timestamp not current: TokenRequest timestamp is %s away from server time (allowed ±%s)", skew.Round(time.Second), tokenRequestWindow)
		}
		if len(tr.Nonce) < 16 {
			return nil, newErr(400, 40003, "TokenRequest nonce must be at least 16 characters")
		}
		if !s.useNonce(tr.Nonce, now) {
			return nil, newErr(401, 40105, "nonce value replayed")
		}
	}

	ttl := defaultTokenTTL
	if tr.TTL.set && tr.TTL.v != 0 {
		if tr.TTL.v < 0 {
			return nil, newErr(400, 40003, "invalid ttl %d", tr.TTL.v)
		}
		ttl = time.Duration(tr.TTL.v) * time.Millisecond
		if ttl > maxTokenTTL {
			return nil, newErr(400, 40003, "ttl %d ms exceeds the maximum of %d ms (24 h)", tr.TTL.v, maxTokenTTL.Milliseconds())
		}
	}
	capStr := `{"*":["*"]}`
	if tr.Capability != nil && *tr.Capability != "" {
		if _, err := parseCapability(*tr.Capability); err != nil {
			return nil, newErr(400, 40000, "invalid capability: %v", err)
		}
		capStr = *tr.Capability
	}
	clientID := ""
	if tr.ClientID != nil {
		clientID = *tr.ClientID
	}

	// Whole seconds, so TokenDetails.expires and the JWT's exp agree exactly
	// (for ttls that are whole seconds).
	issued := now.Unix() * 1000
	expires := issued + ttl.Milliseconds()
	claims := map[string]any{
		"iat":               issued / 1000,
		"exp":               expires / 1000,
		"x-ably-capability": capStr,
	}
	if clientID != "" {
		claims["x-ably-clientId"] = clientID
	}
	tok, err := s.signJWT(claims)
	if err != nil {
		return nil, newErr(500, 50000, "signing token: %v", err)
	}
	s.store.countToken()
	return &tokenDetails{Token: tok, KeyName: keyName, Issued: issued, Expires: expires,
		Capability: capStr, ClientID: clientID}, nil
}

// useNonce records a TokenRequest nonce and reports whether it was fresh.
// Nonces are forgotten after 10 minutes: by then any request carrying them
// fails the ±2 minute timestamp check anyway.
func (s *Server) useNonce(nonce string, now time.Time) bool {
	s.nonceMu.Lock()
	defer s.nonceMu.Unlock()
	cut := now.Add(-10 * time.Minute).UnixMilli()
	for n, at := range s.nonces {
		if at < cut {
			delete(s.nonces, n)
		}
	}
	k := s.key.Name + "\n" + nonce
	if _, seen := s.nonces[k]; seen {
		return false
	}
	s.nonces[k] = now.UnixMilli()
	return true
}
