package outbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
)

// upstream is a real HTTP receiver whose behaviour the test switches.
type upstream struct {
	*httptest.Server
	mode     atomic.Value // string: "accept", "refuse", "hang", "drop"
	mu       sync.Mutex
	byID     map[string]int
	bodies   map[string][]byte
	total    atomic.Int64
	inflight atomic.Int64
	badBody  atomic.Int64
}

func newUpstream(t testing.TB, mode string) *upstream {
	u := &upstream{byID: map[string]int{}, bodies: map[string][]byte{}}
	u.mode.Store(mode)
	u.Server = httptest.NewServer(http.HandlerFunc(u.serve))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) set(mode string) { u.mode.Store(mode) }

func (u *upstream) serve(w http.ResponseWriter, r *http.Request) {
	u.inflight.Add(1)
	defer u.inflight.Add(-1)
	body, _ := io.ReadAll(r.Body)
	id := r.Header.Get("webhook-id")
	switch u.mode.Load().(string) {
	case "refuse":
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
	case "hang":
		<-r.Context().Done()
	case "drop":
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
			}
		}
	default: // accept
		u.total.Add(1)
		u.mu.Lock()
		u.byID[id]++
		if prev, ok := u.bodies[id]; ok && !bytes.Equal(prev, body) {
			u.badBody.Add(1)
		}
		u.bodies[id] = body
		u.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}
}

func (u *upstream) count(id string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byID[id]
}

func (u *upstream) body(id string) []byte {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bodies[id]
}

// distinct is how many ids were accepted, and how many acceptances
// beyond the first per id there were.
func (u *upstream) distinct() (ids, duplicates int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, n := range u.byID {
		ids++
		duplicates += n - 1
	}
	return ids, duplicates
}

// poster delivers entries as the handler will: a real signed-looking
// POST, classified with Classify.
type poster struct {
	url     string
	client  *http.Client
	timeout time.Duration
	calls   atomic.Int64
}

func newPoster(url string, timeout time.Duration) *poster {
	return &poster{url: url, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, timeout: timeout}
}

func (p *poster) deliver(ctx context.Context, e Entry) Result {
	p.calls.Add(1)
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(e.Body))
	if err != nil {
		return Failed(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header["webhook-id"] = []string{e.ID}
	req.Header["webhook-timestamp"] = []string{strconv.FormatInt(time.Now().Unix(), 10)}
	resp, err := p.client.Do(req)
	if err != nil {
		return Classify(0, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return Classify(resp.StatusCode, nil)
}

// fileStore is a Store over a real FileStorage in a temporary folder.
func fileStore(t testing.TB, dir string) *Store {
	if dir == "" {
		dir = t.TempDir()
	}
	return NewStore(&certmagic.FileStorage{Path: dir}, testLogger(t))
}

func testLogger(t testing.TB) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zapcore.WarnLevel))
}

// fast is a schedule for tests: retries every 100ms.
func fast() Schedule {
	return Schedule{Retry: []time.Duration{100 * time.Millisecond}, GiveUp: time.Hour, Keep: time.Hour}
}

// startWorker starts a Worker with quick scans, stopped at the test's end.
func startWorker(t testing.TB, s *Store, forward string, sched Schedule, deliver func(context.Context, Entry) Result, tweak ...func(*WorkerConfig)) *Worker {
	t.Helper()
	cfg := WorkerConfig{Forward: forward, Schedule: sched, Deliver: deliver, Logger: testLogger(t), ScanInterval: 50 * time.Millisecond}
	for _, f := range tweak {
		f(&cfg)
	}
	w, err := NewWorker(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Stop)
	return w
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testkit.Eventually(t, within, what, cond)
}

func mustGet(t testing.TB, s *Store, forward, id string) Entry {
	t.Helper()
	e, err := s.Get(context.Background(), forward, id)
	if err != nil {
		t.Fatalf("get %s: %v", id, err)
	}
	return e
}

func stateOf(s *Store, forward, id string) State {
	st, _ := s.Lookup(context.Background(), forward, id)
	return st
}

func body(id string) []byte {
	return []byte(fmt.Sprintf(`{"type":"alipay.trade_status_sync","timestamp":"2019-08-15T15:56:25+08:00","data":{"notify_id":%q,"subject":"A&B <x>","total_amount":"0.10"}}`, id))
}

// countingStorage is a generic certmagic.Storage (no TryLock, not a
// *FileStorage) that counts Loads: the path every other storage takes.
type countingStorage struct {
	fs    *certmagic.FileStorage
	loads atomic.Int64
	locks atomic.Int64
	// noDirs: a non-recursive List leaves out "directories", as some
	// storages do.
	noDirs bool
}

func (c *countingStorage) Lock(ctx context.Context, name string) error {
	c.locks.Add(1)
	return c.fs.Lock(ctx, name)
}
func (c *countingStorage) Unlock(ctx context.Context, name string) error {
	return c.fs.Unlock(ctx, name)
}
func (c *countingStorage) Store(ctx context.Context, key string, value []byte) error {
	return c.fs.Store(ctx, key, value)
}
func (c *countingStorage) Load(ctx context.Context, key string) ([]byte, error) {
	c.loads.Add(1)
	return c.fs.Load(ctx, key)
}
func (c *countingStorage) Delete(ctx context.Context, key string) error {
	return c.fs.Delete(ctx, key)
}
func (c *countingStorage) Exists(ctx context.Context, key string) bool {
	return c.fs.Exists(ctx, key)
}
func (c *countingStorage) List(ctx context.Context, path string, recursive bool) ([]string, error) {
	keys, err := c.fs.List(ctx, path, recursive)
	if c.noDirs {
		var files []string
		for _, k := range keys {
			if info, err := c.fs.Stat(ctx, k); err == nil && info.IsTerminal {
				files = append(files, k)
			}
		}
		keys = files
	}
	return keys, err
}
func (c *countingStorage) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	return c.fs.Stat(ctx, key)
}

var _ certmagic.Storage = (*countingStorage)(nil)
