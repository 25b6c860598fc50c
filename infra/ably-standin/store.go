package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ---- incoming messages ----

// inMessage is a Message as published over REST (JSON). Other fields Ably
// accepts (connectionKey, ...) are ignored.
type inMessage struct {
	ID       string          `json:"id"`
	Name     string          `json:"name"`
	Data     json.RawMessage `json:"data"`
	Encoding string          `json:"encoding"`
	ClientID string          `json:"clientId"`
	Extras   json.RawMessage `json:"extras"`
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// parseMessages accepts one Message object or an array of them.
func parseMessages(body []byte) ([]inMessage, *ablyError) {
	b := bytes.TrimSpace(body)
	var msgs []inMessage
	switch {
	case len(b) > 0 && b[0] == '[':
		if err := json.Unmarshal(b, &msgs); err != nil {
			return nil, newErr(400, 40001, "invalid message array: %v", err)
		}
	case len(b) > 0 && b[0] == '{':
		var m inMessage
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, newErr(400, 40001, "invalid message: %v", err)
		}
		msgs = []inMessage{m}
	default:
		return nil, newErr(400, 40001, "messages must be a Message object or an array of them")
	}
	if len(msgs) == 0 {
		return nil, newErr(400, 40000, "no messages to publish")
	}
	for i := range msgs {
		m := &msgs[i]
		if isNull(m.Data) {
			m.Data = nil
		}
		if isNull(m.Extras) {
			m.Extras = nil
		} else if bytes.TrimSpace(m.Extras)[0] != '{' {
			return nil, newErr(400, 40032, "invalid extras: must be a JSON object")
		}
	}
	return msgs, nil
}

// group is one atomic publish to a channel, validated and ready to store.
type group struct {
	msgs      []inMessage
	key       string // idempotency key: the id (one message) or the shared base id (several); "" = none
	messageID string // "" = generate one
}

// prepareGroup checks client ids, size and client-supplied ids for one
// atomic publish, and fills in the caller's client id where a message has none.
func prepareGroup(p *principal, in []inMessage) (*group, *ablyError) {
	msgs := make([]inMessage, len(in))
	copy(msgs, in)
	size := 0
	for i := range msgs {
		m := &msgs[i]
		switch {
		case m.ClientID == "":
			if p.clientID != "" && p.clientID != "*" {
				m.ClientID = p.clientID
			}
		case m.ClientID == "*":
			return nil, newErr(400, 40012, "invalid clientId: '*' cannot be used as a message clientId")
		case p.viaKey, p.clientID == "*", p.clientID == "", p.clientID == m.ClientID:
			// Key holders and wildcard tokens may claim any client id. Anonymous
			// tokens are allowed too (not verified against Ably; see README).
		default:
			return nil, newErr(400, 40012, "mismatched clientId: message clientId %q is not the token's %q", m.ClientID, p.clientID)
		}
		size += len(m.Name) + len(m.ClientID) + len(m.Extras) + dataSize(m.Data)
	}
	if size > maxMessageBytes {
		return nil, newErr(413, 40009, "maximum message length exceeded: %d bytes (limit %d)", size, maxMessageBytes)
	}
	g := &group{msgs: msgs}
	withID := 0
	for _, m := range msgs {
		if m.ID != "" {
			withID++
		}
	}
	switch {
	case withID == 0:
	case len(msgs) == 1:
		g.key, g.messageID = msgs[0].ID, msgs[0].ID
	case withID != len(msgs):
		return nil, newErr(400, 40031, "Client-specified message id cannot be empty (when any message in a multi-message publish has an id, all must)")
	default:
		base := ""
		for i, m := range msgs {
			j := strings.LastIndex(m.ID, ":")
			b, idx := "", ""
			if j > 0 {
				b, idx = m.ID[:j], m.ID[j+1:]
			}
			if _, err := strconv.ParseUint(idx, 10, 32); b == "" || err != nil || (i > 0 && b != base) {
				return nil, newErr(400, 40031, "Client-specified message ids do not match the required format for multi-message publishes: want <base>:<index> with one shared base, got %q", m.ID)
			}
			base = b
		}
		g.key, g.messageID = base, base
	}
	return g, nil
}

// dataSize counts a string's bytes (not its JSON quoting) and other JSON as sent.
func dataSize(raw json.RawMessage) int {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return len(s)
		}
	}
	return len(raw)
}

// ---- stored messages ----

type storedMessage struct {
	Channel   string
	ID        string
	Name      string
	Data      json.RawMessage
	Encoding  string
	ClientID  string
	Extras    json.RawMessage
	Timestamp int64
	Serial    string
	seq       int64 // 1-based position in the channel
	gseq      int64 // 1-based acceptance order over all channels; never reused (the SSE resume id)
}

type historyItem struct {
	ID        string          `json:"id"`
	Channel   string          `json:"channel,omitempty"`
	Name      string          `json:"name,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	Encoding  string          `json:"encoding,omitempty"`
	ClientID  string          `json:"clientId,omitempty"`
	Extras    json.RawMessage `json:"extras,omitempty"`
	Timestamp int64           `json:"timestamp"`
	Serial    string          `json:"serial"`
}

func (m *storedMessage) item(withChannel bool) historyItem {
	it := historyItem{ID: m.ID, Name: m.Name, Data: m.Data, Encoding: m.Encoding, ClientID: m.ClientID,
		Extras: m.Extras, Timestamp: m.Timestamp, Serial: m.Serial}
	if withChannel {
		it.Channel = m.Channel
	}
	return it
}

type idemRecord struct {
	at        time.Time
	messageID string
	serials   []string
}

type idemEntry struct {
	channel, key string
	at           time.Time
}

type channelState struct {
	messages []*storedMessage
	lastTS   int64
	idem     map[string]*idemRecord
}

type counters struct {
	Accepted     int64 `json:"accepted"`
	Deduplicated int64 `json:"deduplicated"`
	Refused      int64 `json:"refused"`
	Faulted      int64 `json:"faulted"`
	Dropped      int64 `json:"dropped"`
	TokensIssued int64 `json:"tokensIssued"`
}

// Store holds everything in memory behind one mutex.
type Store struct {
	mu       sync.Mutex
	now      func() time.Time
	window   time.Duration
	channels map[string]*channelState
	order    []*storedMessage
	idemQ    []idemEntry
	c        counters
	gseq     int64 // last global sequence number; kept across resets so SSE resume ids stay unique
	subs     map[*subscriber]bool

	faultStatus     int
	faultRemaining  int
	faultRetryAfter int
	dropUntil       time.Time
}

func NewStore(now func() time.Time) *Store {
	return &Store{now: now, window: 2 * time.Minute, channels: map[string]*channelState{}, subs: map[*subscriber]bool{}}
}

func randomID() string {
	b := make([]byte, 9)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// publish stores one atomic group on a channel unless its idempotency key was
// accepted on that channel within the window, in which case the original
// result is returned and nothing is stored.
func (s *Store) publish(channel string, g *group) publishResponse {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	for len(s.idemQ) > 0 && now.Sub(s.idemQ[0].at) >= s.window {
		e := s.idemQ[0]
		s.idemQ = s.idemQ[1:]
		if ch := s.channels[e.channel]; ch != nil {
			if rec := ch.idem[e.key]; rec != nil && rec.at.Equal(e.at) {
				delete(ch.idem, e.key)
			}
		}
	}
	ch := s.channels[channel]
	if ch == nil {
		ch = &channelState{idem: map[string]*idemRecord{}}
		s.channels[channel] = ch
	}
	if g.key != "" {
		if rec := ch.idem[g.key]; rec != nil && now.Sub(rec.at) < s.window {
			s.c.Deduplicated += int64(len(g.msgs))
			return publishResponse{Channel: channel, MessageID: rec.messageID, Serials: append([]string(nil), rec.serials...)}
		}
	}
	messageID, generated := g.messageID, g.messageID == ""
	if generated {
		messageID = randomID()
	}
	ts := now.UnixMilli()
	if ts < ch.lastTS {
		ts = ch.lastTS // keep per-channel timestamps (and serials) monotonic
	}
	ch.lastTS = ts
	serials := make([]string, len(g.msgs))
	for i, m := range g.msgs {
		seq := int64(len(ch.messages)) + 1
		s.gseq++
		sm := &storedMessage{Channel: channel, ID: m.ID, Name: m.Name, Data: m.Data, Encoding: m.Encoding,
			ClientID: m.ClientID, Extras: m.Extras, Timestamp: ts, seq: seq, gseq: s.gseq,
			Serial: fmt.Sprintf("%014d-%09d@ably-standin", ts, seq)}
		if generated {
			sm.ID = messageID + ":" + strconv.Itoa(i)
		}
		serials[i] = sm.Serial
		ch.messages = append(ch.messages, sm)
		s.order = append(s.order, sm)
		s.fanOut(sm)
	}
	s.c.Accepted += int64(len(g.msgs))
	if g.key != "" {
		ch.idem[g.key] = &idemRecord{at: now, messageID: messageID, serials: serials}
		s.idemQ = append(s.idemQ, idemEntry{channel: channel, key: g.key, at: now})
	}
	return publishResponse{Channel: channel, MessageID: messageID, Serials: append([]string(nil), serials...)}
}

// history returns up to limit messages with start <= timestamp <= end,
// newest first (or oldest first if forwards), continuing after cursor (a
// channel position; -1 = from the start). next is the cursor for the
// following page, or -1 if there is none.
func (s *Store) history(channel string, forwards bool, limit int, start, end, cursor int64) ([]*storedMessage, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := s.channels[channel]
	if ch == nil {
		return nil, -1
	}
	var out []*storedMessage
	n := len(ch.messages)
	for k := 0; k < n; k++ {
		i := n - 1 - k
		if forwards {
			i = k
		}
		m := ch.messages[i]
		if cursor >= 0 && ((forwards && m.seq <= cursor) || (!forwards && m.seq >= cursor)) {
			continue
		}
		if m.Timestamp < start || m.Timestamp > end {
			continue
		}
		if len(out) == limit {
			return out, out[len(out)-1].seq
		}
		out = append(out, m)
	}
	return out, -1
}

// after returns the stored messages whose global acceptance number is above
// n, in acceptance order, and the newest number handed out so far (a cursor for
// the next call: numbers are never reused, not even across reset).
func (s *Store) after(n int64) ([]*storedMessage, int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := sort.Search(len(s.order), func(i int) bool { return s.order[i].gseq > n })
	return append([]*storedMessage(nil), s.order[i:]...), s.gseq
}

func (s *Store) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.channels = map[string]*channelState{}
	s.order, s.idemQ = nil, nil
	s.c = counters{}
	s.faultStatus, s.faultRemaining, s.faultRetryAfter = 0, 0, 0
	s.dropUntil = time.Time{}
}

func (s *Store) stats() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return map[string]any{
		"accepted":     s.c.Accepted,
		"deduplicated": s.c.Deduplicated,
		"refused":      s.c.Refused,
		"faulted":      s.c.Faulted,
		"dropped":      s.c.Dropped,
		"tokensIssued": s.c.TokensIssued,
		"channels":     len(s.channels),
		// Open SSE streams; not reset by DELETE /_standin/messages.
		"sseSubscribers": len(s.subs),
	}
}

func (s *Store) countRefused(n int64) {
	s.mu.Lock()
	s.c.Refused += n
	s.mu.Unlock()
}

func (s *Store) countToken() {
	s.mu.Lock()
	s.c.TokensIssued++
	s.mu.Unlock()
}

// ---- SSE subscribers ----

// subscriber is one open SSE stream. Messages reach it through a buffered
// channel, filled while the store mutex is held, so each stream sees its
// channels' messages in acceptance order, once, with nothing missed between
// its backlog and its live messages.
type subscriber struct {
	channels map[string]bool
	ch       chan *storedMessage
	overflow chan struct{} // closed (and the subscriber removed) when ch was full
}

// fanOut hands a newly stored message to every subscriber of its channel.
// A publisher never waits for a slow reader: a full buffer ends that stream
// instead (the reader can resume with lastEvent). Caller holds s.mu.
func (s *Store) fanOut(m *storedMessage) {
	for sub := range s.subs {
		if !sub.channels[m.Channel] {
			continue
		}
		select {
		case sub.ch <- m:
		default:
			close(sub.overflow)
			delete(s.subs, sub)
		}
	}
}

// subscribe registers an SSE stream on channels and returns, atomically with
// the registration, its backlog in acceptance order: the messages after global
// sequence number after (if after >= 0), or else up to rewind most recent
// messages per channel from the last rewindWindow.
func (s *Store) subscribe(channels []string, after int64, rewind, buffer int, rewindWindow time.Duration) (*subscriber, []*storedMessage) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := &subscriber{channels: map[string]bool{}, ch: make(chan *storedMessage, buffer), overflow: make(chan struct{})}
	for _, c := range channels {
		sub.channels[c] = true
	}
	var backlog []*storedMessage
	switch {
	case after >= 0:
		i := sort.Search(len(s.order), func(i int) bool { return s.order[i].gseq > after })
		for _, m := range s.order[i:] {
			if sub.channels[m.Channel] {
				backlog = append(backlog, m)
			}
		}
	case rewind > 0:
		since := s.now().Add(-rewindWindow).UnixMilli()
		for c := range sub.channels {
			ch := s.channels[c]
			if ch == nil {
				continue
			}
			for i, n := len(ch.messages)-1, 0; i >= 0 && n < rewind && ch.messages[i].Timestamp >= since; i, n = i-1, n+1 {
				backlog = append(backlog, ch.messages[i])
			}
		}
		sort.Slice(backlog, func(i, j int) bool { return backlog[i].gseq < backlog[j].gseq })
	}
	s.subs[sub] = true
	return sub, backlog
}

func (s *Store) unsubscribe(sub *subscriber) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
}

// ---- fault injection ----

func (s *Store) setFault(status, count, retryAfter int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if retryAfter == 0 {
		retryAfter = 1
	}
	s.faultStatus, s.faultRemaining, s.faultRetryAfter = status, count, retryAfter
}

func (s *Store) setDrop(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dropUntil = s.now().Add(d)
}

func (s *Store) clearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faultStatus, s.faultRemaining, s.faultRetryAfter = 0, 0, 0
	s.dropUntil = time.Time{}
}

// takeFault consumes one injected publish failure, if any is pending, and
// returns it with the Retry-After seconds to send (429 only).
func (s *Store) takeFault() (*ablyError, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faultRemaining <= 0 {
		return nil, 0
	}
	s.faultRemaining--
	s.c.Faulted++
	switch s.faultStatus {
	case 429:
		return newErr(429, 42910, "rate limit exceeded (nonfatal): request rejected (fault injected by ably-standin)"), s.faultRetryAfter
	case 503:
		return newErr(503, 50004, "service unavailable (fault injected by ably-standin)"), 0
	default:
		return newErr(500, 50000, "internal error (fault injected by ably-standin)"), 0
	}
}

func (s *Store) dropActive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.now().Before(s.dropUntil) {
		s.c.Dropped++
		return true
	}
	return false
}

func (s *Store) faultState() map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	left := s.dropUntil.Sub(s.now()).Seconds()
	if left < 0 {
		left = 0
	}
	return map[string]any{
		"status":          s.faultStatus,
		"remaining":       s.faultRemaining,
		"retryAfter":      s.faultRetryAfter,
		"dropSecondsLeft": left,
	}
}
