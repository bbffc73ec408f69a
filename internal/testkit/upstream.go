package testkit

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

// Webhook is one request an Upstream received.
type Webhook struct {
	URL       *url.URL
	Header    http.Header
	Trailer   http.Header
	Body      []byte
	VerifyErr error // the official Standard Webhooks library's verdict
	Event     Event
}

// Event is a webhook's JSON body. Data holds string values (domestic
// notifications); RawData the data object as sent (Antom's nested JSON).
type Event struct {
	Type      string            `json:"type"`
	Timestamp string            `json:"timestamp"`
	Data      map[string]string `json:"-"`
	RawData   json.RawMessage   `json:"data"`
}

// Upstream is a merchant backend: it verifies every webhook with the
// official Standard Webhooks Go library, records it, and lets its behaviour
// answer (200 by default). The one fake upstream of every test layer.
type Upstream struct {
	*httptest.Server
	mu       sync.Mutex
	received []Webhook
	hits     map[string]int // by webhook-id
	invalid  int
	behave   http.HandlerFunc
	NewConns atomic.Int64 // TCP connections opened to it
}

// NewUpstream starts an upstream that checks webhooks against secret and
// answers with behave (nil: 200).
func NewUpstream(t testing.TB, secret string, behave http.HandlerFunc) *Upstream {
	return newUpstream(t, secret, behave, false)
}

// NewTLSUpstream is NewUpstream over TLS, with httptest's own certificate.
func NewTLSUpstream(t testing.TB, secret string, behave http.HandlerFunc) *Upstream {
	return newUpstream(t, secret, behave, true)
}

func newUpstream(t testing.TB, secret string, behave http.HandlerFunc, tls bool) *Upstream {
	t.Helper()
	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	if behave == nil {
		behave = Status(http.StatusOK, 0)
	}
	u := &Upstream{hits: map[string]int{}, behave: behave}
	u.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rec := Webhook{URL: r.URL, Header: r.Header.Clone(), Trailer: r.Trailer.Clone(), Body: body, VerifyErr: wh.Verify(body, r.Header)}
		if err := json.Unmarshal(body, &rec.Event); err == nil {
			_ = json.Unmarshal(rec.Event.RawData, &rec.Event.Data) // only domestic data is all strings
		} else if rec.VerifyErr == nil {
			rec.VerifyErr = err
		}
		u.mu.Lock()
		u.received = append(u.received, rec)
		u.hits[r.Header.Get("webhook-id")]++
		if rec.VerifyErr != nil {
			u.invalid++
		}
		behave := u.behave
		u.mu.Unlock()
		behave(w, r)
	}))
	u.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			u.NewConns.Add(1)
		}
	}
	if tls {
		u.StartTLS()
	} else {
		u.Start()
	}
	t.Cleanup(u.Close)
	return u
}

// Status answers status after delay, with a short body.
func Status(status int, delay time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		if status == http.StatusFound {
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
			return
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "processed")
	}
}

// Behave changes how the upstream answers from now on.
func (u *Upstream) Behave(behave http.HandlerFunc) {
	u.mu.Lock()
	u.behave = behave
	u.mu.Unlock()
}

// Take returns and clears what the upstream received.
func (u *Upstream) Take() []Webhook {
	u.mu.Lock()
	defer u.mu.Unlock()
	got := u.received
	u.received = nil
	return got
}

// Count returns how many webhooks with this webhook-id arrived.
func (u *Upstream) Count(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.hits[id]
}

// Totals returns how many webhooks arrived, and how many of them the
// official library refused.
func (u *Upstream) Totals() (hits, invalid int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.hits {
		hits += n
	}
	return hits, u.invalid
}
