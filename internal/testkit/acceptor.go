package testkit

import (
	"net/http"
	"sync"
	"testing"
	"time"
)

// Acceptor is an upstream behaviour (for NewUpstream) that answers 503
// while down, else 204 after a delay, and remembers when it first accepted
// each webhook-id and how many times it accepted it.
type Acceptor struct {
	mu    sync.Mutex
	down  bool
	delay time.Duration
	first map[string]time.Time
	times map[string]int
}

// NewAcceptor returns an Acceptor, down or up, answering after delay.
func NewAcceptor(down bool, delay time.Duration) *Acceptor {
	return &Acceptor{down: down, delay: delay, first: map[string]time.Time{}, times: map[string]int{}}
}

// Set takes the upstream down or up, answering after delay.
func (a *Acceptor) Set(down bool, delay time.Duration) {
	a.mu.Lock()
	a.down, a.delay = down, delay
	a.mu.Unlock()
}

// SetDown takes the upstream down or up, keeping its delay.
func (a *Acceptor) SetDown(down bool) {
	a.mu.Lock()
	a.down = down
	a.mu.Unlock()
}

// Behave is the http.HandlerFunc to give NewUpstream.
func (a *Acceptor) Behave(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	down, delay := a.down, a.delay
	a.mu.Unlock()
	if down {
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	time.Sleep(delay)
	id := r.Header.Get("webhook-id")
	a.mu.Lock()
	if _, ok := a.first[id]; !ok {
		a.first[id] = time.Now()
	}
	a.times[id]++
	a.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// Accepted returns when id was first accepted and how many times it was.
func (a *Acceptor) Accepted(id string) (time.Time, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.first[id], a.times[id]
}

// Count is how many times id was accepted.
func (a *Acceptor) Count(id string) int {
	_, n := a.Accepted(id)
	return n
}

// Distinct is how many webhook-ids were accepted.
func (a *Acceptor) Distinct() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.first)
}

// Duplicates is the number of acceptances of ids beyond the first of each.
func (a *Acceptor) Duplicates(ids []string) int {
	n := 0
	for _, id := range ids {
		if c := a.Count(id); c > 1 {
			n += c - 1
		}
	}
	return n
}

// WaitAll waits until every id was accepted; it returns the ids that were
// not when the deadline passed.
func (a *Acceptor) WaitAll(ids []string, within time.Duration) []string {
	deadline := time.Now().Add(within)
	for {
		var missing []string
		a.mu.Lock()
		for _, id := range ids {
			if _, ok := a.first[id]; !ok {
				missing = append(missing, id)
			}
		}
		a.mu.Unlock()
		if len(missing) == 0 || time.Now().After(deadline) {
			return missing
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RequireAll is WaitAll that fails the test with the ids not accepted.
func (a *Acceptor) RequireAll(t testing.TB, ids []string, within time.Duration) {
	t.Helper()
	if missing := a.WaitAll(ids, within); len(missing) > 0 {
		t.Fatalf("%d of %d entries not delivered within %v, e.g. %v", len(missing), len(ids), within, missing[:min(5, len(missing))])
	}
}
