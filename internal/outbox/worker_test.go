package outbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// The upstream refuses, then fails, then recovers: the entry is delivered
// on the first retry after the recovery, with every attempt counted and the
// same body every time.
func TestDeliveredAfterUpstreamRecovers(t *testing.T) {
	s := fileStore(t, "")
	up := newUpstream(t, "refuse")
	p := newPoster(up.URL, 5*time.Second)
	core, logs := observer.New(zapcore.InfoLevel)
	var mu sync.Mutex
	results := map[Outcome]int{}
	w := startWorker(t, s, up.URL, fast(), p.deliver, func(c *WorkerConfig) {
		c.Logger = zap.New(core)
		c.OnDelivery = func(e Entry, r Result) { mu.Lock(); results[r.Outcome]++; mu.Unlock() }
	})

	// The inline attempt failed: the handler records it.
	e, err := w.RecordFailure(ctx, "n1", "alipay.trade_status_sync", body("n1"), "upstream answered 503")
	if err != nil || e.Attempts != 1 {
		t.Fatal(err, e)
	}
	if st, _ := w.Lookup(ctx, "n1"); st != Pending {
		t.Fatalf("lookup: %q", st)
	}
	outcomes := func(o Outcome) int { mu.Lock(); defer mu.Unlock(); return results[o] }
	eventually(t, 10*time.Second, "two refused outbox attempts", func() bool { return outcomes(OutcomeRefused) >= 2 })
	up.set("drop") // now the connection breaks: result error
	eventually(t, 10*time.Second, "two attempts that get no answer", func() bool { return outcomes(OutcomeError) >= 2 })
	if got := mustGet(t, s, up.URL, "n1"); got.State != Pending || got.LastError == "" {
		t.Fatalf("%+v", got)
	}
	up.set("accept")
	atSwitch := p.calls.Load()
	// OnDelivery comes last (after the write and the log line).
	eventually(t, 10*time.Second, "delivered", func() bool { return outcomes(OutcomeAccepted) == 1 })
	// The first retry after the recovery delivered it (an attempt begun
	// before the switch may have been the one).
	if after := p.calls.Load() - atSwitch; after > 1 {
		t.Errorf("%d attempts after the upstream recovered", after)
	}

	got := mustGet(t, s, up.URL, "n1")
	if int64(got.Attempts) != 1+p.calls.Load() {
		t.Errorf("attempts %d, want 1 inline + %d outbox", got.Attempts, p.calls.Load())
	}
	if up.count("n1") != 1 || !bytes.Equal(up.body("n1"), body("n1")) {
		t.Errorf("upstream got it %d times, body %s", up.count("n1"), up.body("n1"))
	}
	if !got.NextAttempt.IsZero() || got.DeliveredAt.IsZero() {
		t.Errorf("%+v", got)
	}
	if d, _ := w.Delivered(ctx, "n1"); !d {
		t.Error("Delivered false")
	}
	mu.Lock()
	if results[OutcomeAccepted] != 1 || results[OutcomeRefused] < 2 || results[OutcomeError] < 2 {
		t.Errorf("results %v", results)
	}
	mu.Unlock()
	// One line per delivery, with id, attempts and result.
	lines := logs.FilterMessage("outbox delivery").All()
	if int64(len(lines)) != p.calls.Load() {
		t.Errorf("%d delivery lines for %d deliveries", len(lines), p.calls.Load())
	}
	last := lines[len(lines)-1].ContextMap()
	if last["id"] != "n1" || last["result"] != "accepted" || last["attempts"] != int64(got.Attempts) {
		t.Errorf("last line %v", last)
	}
	// Gauges follow.
	eventually(t, 5*time.Second, "gauges", func() bool { st := w.Stats(); return st.Delivered == 1 && st.Pending == 0 })
}

// Results of real HTTP exchanges map to the four outcomes.
func TestClassifyOverHTTP(t *testing.T) {
	up := newUpstream(t, "accept")
	e := Entry{ID: "c", Body: body("c")}
	for mode, want := range map[string]Outcome{"accept": OutcomeAccepted, "refuse": OutcomeRefused, "drop": OutcomeError, "hang": OutcomeTimeout} {
		up.set(mode)
		r := newPoster(up.URL, 200*time.Millisecond).deliver(ctx, e)
		if r.Outcome != want {
			t.Errorf("%s: %+v, want %s", mode, r, want)
		}
		if mode == "refuse" && (r.Status != 503 || r.errorText() != "upstream answered 503") {
			t.Errorf("refused: %+v %q", r, r.errorText())
		}
	}
	if r := newPoster(testkit.ClosedURL(t)+"/hook", time.Second).deliver(ctx, e); r.Outcome != OutcomeError {
		t.Errorf("connection refused: %+v", r)
	}
}

// give_up → dead (no more deliveries) → ReplayDead → pending with a fresh
// window → delivered.
func TestGiveUpDeadReplayDelivered(t *testing.T) {
	s := fileStore(t, "")
	up := newUpstream(t, "refuse")
	p := newPoster(up.URL, 5*time.Second)
	sched := Schedule{Retry: []time.Duration{100 * time.Millisecond}, GiveUp: 500 * time.Millisecond, Keep: time.Hour}
	w := startWorker(t, s, up.URL, sched, p.deliver)
	if _, err := w.RecordFailure(ctx, "n1", "t", body("n1"), "upstream answered 503"); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "dead", func() bool { return stateOf(s, up.URL, "n1") == Dead })
	dead := mustGet(t, s, up.URL, "n1")
	if !dead.NextAttempt.IsZero() || dead.DeadAt.Before(dead.FirstFailure.Add(sched.GiveUp)) || dead.Attempts < 3 {
		t.Fatalf("dead: %+v", dead)
	}
	calls := p.calls.Load()
	time.Sleep(400 * time.Millisecond) // several retry periods
	if p.calls.Load() != calls {
		t.Fatal("a dead entry was delivered")
	}
	eventually(t, 5*time.Second, "dead gauge", func() bool { return w.Stats().Dead == 1 })

	// The admin API replays through its own Store.
	admin := NewStore(s.Storage(), testLogger(t))
	before := time.Now()
	if n, err := admin.ReplayDead(ctx, "", before); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	// The local worker hears of the replay at once and may already have
	// tried it again (the upstream still refuses): either the entry is
	// untouched since the replay, or it holds that one more attempt.
	r := mustGet(t, s, up.URL, "n1")
	untouched := r.NextAttempt.Equal(before) && r.Attempts == dead.Attempts
	retried := r.Attempts > dead.Attempts && !r.LastAttempt.Before(before)
	if r.State != Pending || !r.WindowStart.Equal(before) || !(untouched || retried) {
		t.Fatalf("replayed: %+v", r)
	}
	// Pending again, still failing: retried within the fresh window.
	eventually(t, 5*time.Second, "retried after replay", func() bool { return p.calls.Load() >= calls+2 })
	up.set("accept")
	eventually(t, 10*time.Second, "delivered", func() bool { return stateOf(s, up.URL, "n1") == Delivered })
}

// A replay through the admin API's Store reaches a local Worker at once,
// not at its next revalidation.
func TestReplayIsDeliveredAtOnce(t *testing.T) {
	s := fileStore(t, "")
	up := newUpstream(t, "accept")
	sched := DefaultSchedule() // keep 30d, retry 5s
	old := time.Now().Add(-8 * 24 * time.Hour)
	e := sched.newEntry(up.URL, "d", "t", body("d"), "e", old)
	e.die(old.Add(7 * 24 * time.Hour))
	s.Put(ctx, e)
	w := startWorker(t, s, up.URL, sched, newPoster(up.URL, 5*time.Second).deliver)
	eventually(t, 5*time.Second, "indexed", func() bool { return w.Stats().Dead == 1 })
	admin := NewStore(s.Storage(), testLogger(t))
	start := time.Now()
	if n, _ := admin.Replay(ctx, "", []string{"d"}, time.Now()); n != 1 {
		t.Fatal("not replayed")
	}
	eventually(t, 5*time.Second, "delivered", func() bool { return up.count("d") == 1 })
	t.Logf("replay to delivery: %s", time.Since(start))
}

// Delivered and dead entries go after keep; pending ones stay.
func TestKeepRemovesOldEntries(t *testing.T) {
	s := fileStore(t, "")
	up := newUpstream(t, "accept")
	sched := Schedule{Retry: []time.Duration{time.Hour}, GiveUp: 24 * time.Hour, Keep: 300 * time.Millisecond}
	now := time.Now()
	for _, id := range []string{"delivered", "dead", "pending"} {
		e := sched.newEntry(up.URL, id, "t", body(id), "e", now)
		switch id {
		case "delivered":
			e.accepted(now)
		case "dead":
			e.die(now)
		}
		s.Put(ctx, e)
	}
	w := startWorker(t, s, up.URL, sched, newPoster(up.URL, time.Second).deliver)
	eventually(t, 5*time.Second, "delivered and dead removed", func() bool {
		l, _ := s.List(ctx, Filter{})
		return len(l) == 1 && l[0].ID == "pending"
	})
	eventually(t, 5*time.Second, "gauges", func() bool {
		st := w.Stats()
		return st.Pending == 1 && st.Dead == 0 && st.Delivered == 0 && !st.OldestPending.IsZero()
	})
	if up.total.Load() != 0 {
		t.Error("something was delivered")
	}
}

// Two instances (two Stores and Workers on one storage) deliver N entries:
// none lost, duplicates rare.
func TestTwoWorkersShareOneStorage(t *testing.T) {
	const n = 200
	dir := t.TempDir()
	up := newUpstream(t, "accept")
	seed := fileStore(t, dir)
	sched := fast()
	seedEntries(t, dir, up.URL, n, time.Now())
	var delivered atomic.Int64
	count := func(c *WorkerConfig) {
		c.OnDelivery = func(e Entry, r Result) {
			if r.Outcome == OutcomeAccepted {
				delivered.Add(1)
			}
		}
	}
	s1, s2 := fileStore(t, dir), fileStore(t, dir)
	w1 := startWorker(t, s1, up.URL, sched, newPoster(up.URL, 5*time.Second).deliver, count)
	w2 := startWorker(t, s2, up.URL, sched, newPoster(up.URL, 5*time.Second).deliver, count)
	t0 := time.Now()
	eventually(t, 40*time.Second, "all delivered", func() bool {
		ids, _ := up.distinct()
		return ids == n
	})
	t.Logf("upstream has all after %s", time.Since(t0))
	eventually(t, 30*time.Second, "all marked delivered", func() bool {
		l, _ := seed.List(ctx, Filter{State: Delivered})
		return len(l) == n
	})
	t.Logf("all marked delivered after %s", time.Since(t0))
	ids, dups := up.distinct()
	t.Logf("%d entries, %d duplicate deliveries (%.1f%%); worker stats %+v / %+v", ids, dups, 100*float64(dups)/n, w1.Stats(), w2.Stats())
	if dups > n*5/100 {
		t.Errorf("%d duplicates, more than 5%%", dups)
	}
	if up.badBody.Load() != 0 {
		t.Error("a re-send changed the body")
	}
	// OnDelivery runs after the write that List sees.
	eventually(t, 10*time.Second, "one accepted result per delivery", func() bool {
		ids, dups := up.distinct()
		return delivered.Load() == int64(ids+dups)
	})
}

// Stop in the middle of a delivery: the entry stays exactly as it was, and a
// new Worker delivers it.
func TestStopDuringDelivery(t *testing.T) {
	dir := t.TempDir()
	s := fileStore(t, dir)
	up := newUpstream(t, "hang")
	now := time.Now().Add(-time.Second)
	e := fast().newEntry(up.URL, "n1", "t", body("n1"), "e", now)
	e.NextAttempt = now
	s.Put(ctx, e)
	before := mustGet(t, s, up.URL, "n1")

	w, _ := NewWorker(s, WorkerConfig{Forward: up.URL, Schedule: fast(), Deliver: newPoster(up.URL, time.Minute).deliver,
		Logger: testLogger(t), ScanInterval: 50 * time.Millisecond})
	w.Start(ctx)
	eventually(t, 10*time.Second, "delivery in flight", func() bool { return up.inflight.Load() == 1 })
	stopped := make(chan struct{})
	go func() { w.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}
	w.Stop() // idempotent

	after := mustGet(t, s, up.URL, "n1")
	if after.State != Pending || after.Attempts != before.Attempts || !after.NextAttempt.Equal(before.NextAttempt) || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Fatalf("changed by an abandoned delivery:\n%+v\n%+v", before, after)
	}
	// The lock was released: a new Worker (the reload) delivers at once.
	up.set("accept")
	start := time.Now()
	startWorker(t, fileStore(t, dir), up.URL, fast(), newPoster(up.URL, 5*time.Second).deliver)
	eventually(t, 5*time.Second, "delivered after restart", func() bool { return stateOf(s, up.URL, "n1") == Delivered })
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %s: was the lock left behind?", el)
	}
	if got := mustGet(t, s, up.URL, "n1"); got.Attempts != before.Attempts+1 {
		t.Errorf("attempts %d, want %d", got.Attempts, before.Attempts+1)
	}
}

// A new process (new Store and Worker on the same folder) delivers what an
// earlier one recorded.
func TestRestartDeliversPending(t *testing.T) {
	dir := t.TempDir()
	up := newUpstream(t, "accept")
	first := fileStore(t, dir)
	for i := range 5 {
		if _, err := first.RecordFailure(ctx, fast(), Failure{Forward: up.URL, ID: fmt.Sprint("n", i), Body: body(fmt.Sprint(i)), Error: "e"}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	startWorker(t, fileStore(t, dir), up.URL, fast(), newPoster(up.URL, 5*time.Second).deliver)
	eventually(t, 10*time.Second, "all delivered", func() bool { ids, _ := up.distinct(); return ids == 5 })
}

// A lock left by a crashed instance is taken over: a stale lock file by
// TryLock, an empty one (a crash between creating and writing it) by the
// blocking Lock the claim falls back to.
func TestCrashedInstanceLocksTakenOver(t *testing.T) {
	dir := t.TempDir()
	s := fileStore(t, dir)
	up := newUpstream(t, "accept")
	now := time.Now().Add(-time.Second)
	for _, id := range []string{"stale", "empty"} {
		e := fast().newEntry(up.URL, id, "t", body(id), "e", now)
		e.NextAttempt = now
		s.Put(ctx, e)
	}
	lockFile := func(id string) string {
		return filepath.Join(dir, "locks", certmagic.StorageKeys.Safe(lockName(entryKey(Namespace(up.URL), id)))+".lock")
	}
	os.MkdirAll(filepath.Join(dir, "locks"), 0o700)
	old := time.Now().Add(-time.Minute)
	meta, _ := json.Marshal(map[string]time.Time{"created": old, "updated": old})
	os.WriteFile(lockFile("stale"), meta, 0o644)
	os.WriteFile(lockFile("empty"), nil, 0o644)

	w, _ := NewWorker(s, WorkerConfig{Forward: up.URL, Schedule: fast(), Deliver: newPoster(up.URL, 5*time.Second).deliver,
		Logger: testLogger(t), ScanInterval: 50 * time.Millisecond})
	w.forceLockAfter = 500 * time.Millisecond
	w.Start(ctx)
	t.Cleanup(w.Stop)
	eventually(t, 5*time.Second, "stale lock taken over", func() bool { return up.count("stale") == 1 })
	eventually(t, 10*time.Second, "empty lock taken over", func() bool { return up.count("empty") == 1 })
}

// On a storage that is not FileStorage and has no TryLock (the path of
// every other storage module), the Worker claims with Lock, and Lookup of an
// unknown id costs no Load once the index is warm.
func TestGenericStorage(t *testing.T) {
	cs := &countingStorage{fs: &certmagic.FileStorage{Path: t.TempDir()}}
	s := NewStore(cs, testLogger(t))
	if s.file != nil {
		t.Fatal("detected as FileStorage")
	}
	up := newUpstream(t, "refuse")
	w := startWorker(t, s, up.URL, fast(), newPoster(up.URL, 5*time.Second).deliver)
	w.RecordFailure(ctx, "n1", "t", body("n1"), "e")
	eventually(t, 5*time.Second, "retried", func() bool { return mustGet(t, s, up.URL, "n1").Attempts >= 3 })
	up.set("accept")
	eventually(t, 5*time.Second, "delivered", func() bool { return stateOf(s, up.URL, "n1") == Delivered })
	if cs.locks.Load() == 0 {
		t.Error("never locked")
	}
	eventually(t, 5*time.Second, "warm", func() bool { return !w.Stats().At.IsZero() })

	loads := cs.loads.Load()
	for i := range 1000 {
		if st, err := w.Lookup(ctx, fmt.Sprint("unknown", i)); st != "" || err != nil {
			t.Fatal(st, err)
		}
	}
	if got := cs.loads.Load() - loads; got > 10 { // a concurrent revalidation may read n1
		t.Errorf("1000 lookups of unknown ids made %d Loads", got)
	}
	loads = cs.loads.Load()
	if d, _ := w.Delivered(ctx, "n1"); !d {
		t.Error("known id not delivered")
	}
	if cs.loads.Load() == loads {
		t.Error("a known id was answered without reading the storage")
	}
	// A stopped Worker reads the storage.
	w.Stop()
	loads = cs.loads.Load()
	w.Lookup(ctx, "unknown")
	if cs.loads.Load() != loads+1 {
		t.Error("a stopped worker trusted its index")
	}
}

// The scan finds what another instance wrote, and forgets what it deleted.
func TestIndexFollowsOtherInstances(t *testing.T) {
	dir := t.TempDir()
	up := newUpstream(t, "accept")
	sched := Schedule{Retry: []time.Duration{time.Hour}, GiveUp: 24 * time.Hour, Keep: time.Hour}
	w := startWorker(t, fileStore(t, dir), up.URL, sched, newPoster(up.URL, time.Second).deliver)
	other := NewStore(&certmagic.FileStorage{Path: dir}, testLogger(t))
	// Another process's writes do not reach this one's Workers directly:
	// unregister the local Worker while the other Store writes.
	unregister(w)
	other.RecordFailure(ctx, sched, Failure{Forward: up.URL, ID: "x", Body: body("x"), Error: "e"}, time.Now())
	other.RecordFailure(ctx, sched, Failure{Forward: up.URL, ID: "y", Body: body("y"), Error: "e"}, time.Now())
	eventually(t, 5*time.Second, "seen", func() bool { return w.Stats().Pending == 2 })
	if st, _ := w.Lookup(ctx, "x"); st != Pending {
		t.Errorf("lookup %q", st)
	}
	other.MarkDelivered(ctx, up.URL, "y", time.Now())
	eventually(t, 6*time.Second, "other's delivery in the gauges", func() bool { st := w.Stats(); return st.Pending == 1 && st.Delivered == 1 })
	other.Delete(ctx, up.URL, "x")
	eventually(t, 5*time.Second, "deletion seen", func() bool { st := w.Stats(); return st.Pending == 0 && st.Delivered == 1 })
	// A replay elsewhere of a delivered entry (which the index otherwise
	// re-reads once a minute) reaches this Worker at its next scan: it
	// delivers it.
	if n, _ := other.Replay(ctx, "", []string{"y"}, time.Now()); n != 1 {
		t.Fatal("not replayed")
	}
	eventually(t, 3*time.Second, "replay seen and delivered", func() bool { return up.count("y") == 1 })
	register(w)
}

func TestWorkerConfig(t *testing.T) {
	s := fileStore(t, "")
	if _, err := NewWorker(s, WorkerConfig{}); err == nil {
		t.Error("no forward accepted")
	}
	if _, err := NewWorker(s, WorkerConfig{Forward: fwdA, Schedule: Schedule{GiveUp: -1}}); err == nil {
		t.Error("bad schedule accepted")
	}
	w, err := NewWorker(s, WorkerConfig{Forward: fwdA, ScanInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if w.scanEvery != MaxScanInterval || w.concurrency != DefaultConcurrency || w.Schedule().GiveUp != DefaultGiveUp {
		t.Errorf("defaults: %v %d %+v", w.scanEvery, w.concurrency, w.Schedule())
	}
	if err := w.Start(ctx); err == nil {
		t.Error("started without Deliver")
	}
	w.Stop() // never started: no-op
	w2, _ := NewWorker(s, WorkerConfig{Forward: fwdA, Deliver: func(context.Context, Entry) Result { return Accepted(200) }})
	if err := w2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := w2.Start(ctx); err == nil {
		t.Error("started twice")
	}
	w2.Stop()
	w2.Stop()
	if got := RedactURL("http://hook:s3cret@127.0.0.1:8080/x"); strings.Contains(got, "s3cret") {
		t.Errorf("forward logged with its password: %s", got)
	}
}

// A Deliver that panics or returns nonsense is an error result, not a crash.
func TestDeliverMisbehaves(t *testing.T) {
	s := fileStore(t, "")
	var calls atomic.Int64
	startWorker(t, s, fwdA, fast(), func(ctx context.Context, e Entry) Result {
		switch calls.Add(1) {
		case 1:
			panic("boom")
		case 2:
			return Result{}
		}
		return Accepted(200)
	})
	s.RecordFailure(ctx, fast(), Failure{Forward: fwdA, ID: "p", Body: body("p"), Error: "e"}, time.Now())
	eventually(t, 5*time.Second, "delivered", func() bool { return stateOf(s, fwdA, "p") == Delivered })
	if e := mustGet(t, s, fwdA, "p"); e.Attempts != 4 {
		t.Errorf("attempts %d", e.Attempts)
	}
}

// An entry past its give_up deadline by more than the slack (no instance
// ran when its last attempt was due) dies without another attempt.
func TestExpiredWhileDownDiesWithoutAttempt(t *testing.T) {
	s := fileStore(t, "")
	sched := Schedule{Retry: []time.Duration{time.Second}, GiveUp: time.Hour, Keep: time.Hour}
	old := time.Now().Add(-2 * time.Hour)
	s.RecordFailure(ctx, sched, Failure{Forward: fwdA, ID: "old", Body: body("old"), Error: "e"}, old)
	var calls atomic.Int64
	startWorker(t, s, fwdA, sched, func(context.Context, Entry) Result { calls.Add(1); return Accepted(200) })
	eventually(t, 5*time.Second, "dead", func() bool { return stateOf(s, fwdA, "old") == Dead })
	if calls.Load() != 0 {
		t.Error("delivered after give_up")
	}
}
