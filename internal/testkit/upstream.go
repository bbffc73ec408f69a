package testkit

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
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
	// Answered is the status the upstream answered (0 while it has not).
	Answered int
}

// Accepted reports whether the upstream took the webhook: a valid one,
// answered 2xx.
func (w Webhook) Accepted() bool { return w.VerifyErr == nil && w.Answered >= 200 && w.Answered < 300 }

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
		index := len(u.received) - 1
		u.hits[r.Header.Get("webhook-id")]++
		if rec.VerifyErr != nil {
			u.invalid++
		}
		behave := u.behave
		u.mu.Unlock()
		answer := &statusRecorder{ResponseWriter: w}
		behave(answer, r)
		u.mu.Lock()
		if index < len(u.received) { // not taken meanwhile
			u.received[index].Answered = answer.status()
		}
		u.mu.Unlock()
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

// statusRecorder remembers the status a behaviour answered.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (hijacking
// behaviours reset it).
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *statusRecorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
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

// Post posts a form body the way Alipay does (its malformed Content-Type
// included) and returns the status, the answer and its headers.
func Post(t testing.TB, url, body string) (int, string, http.Header) {
	t.Helper()
	return Send(t, http.MethodPost, url, strings.NewReader(body))
}

// Send is Post with another method, or a body of unknown length (sent
// chunked).
func Send(t testing.TB, method, url string, body io.Reader) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ContentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(answer), resp.Header
}
