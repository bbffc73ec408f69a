package outbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"
)

// BenchmarkRecordFailure: the failure path's write (a new entry, fsynced
// file and directory) on FileStorage.
func BenchmarkRecordFailure(b *testing.B) {
	s := NewStore(&certmagic.FileStorage{Path: benchDir(b)}, zap.NewNop())
	sched := DefaultSchedule()
	body := body("x")
	now := time.Now()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := s.RecordFailure(ctx, sched, Failure{Forward: fwdA, ID: fmt.Sprint("n", i), Type: "alipay.trade_status_sync", Body: body, Error: "upstream answered 502"}, now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookup: what the request path pays to know delivered_earlier
// for a notification the outbox does not hold (the happy path), with 1000
// entries in the outbox: a Worker with a warm index, and a bare Store (one
// Load).
func BenchmarkLookup(b *testing.B) {
	dir := b.TempDir()
	seedEntries(b, dir, fwdA, 1000, time.Now().Add(time.Hour))
	s := NewStore(&certmagic.FileStorage{Path: dir}, zap.NewNop())
	b.Run("worker", func(b *testing.B) {
		w, _ := NewWorker(s, WorkerConfig{Forward: fwdA, Deliver: func(context.Context, Entry) Result { return Accepted(200) }})
		w.Start(ctx)
		defer w.Stop()
		for w.Stats().At.IsZero() {
			time.Sleep(time.Millisecond)
		}
		b.ResetTimer()
		for b.Loop() {
			if st, err := w.Lookup(ctx, "2019081500222155625035450570486459"); st != "" || err != nil {
				b.Fatal(st, err)
			}
		}
	})
	b.Run("store", func(b *testing.B) {
		for b.Loop() {
			if st, err := s.Lookup(ctx, fwdA, "2019081500222155625035450570486459"); st != "" || err != nil {
				b.Fatal(st, err)
			}
		}
	})
}

// BenchmarkDrain10000: how long 10 000 due entries take to drain into an
// upstream that accepts everything (a real HTTP server), one Worker with
// the default concurrency on FileStorage.
func BenchmarkDrain10000(b *testing.B) {
	const n = 10000
	for b.Loop() {
		b.StopTimer()
		dir := benchDir(b)
		up := newUpstream(b, "accept")
		seedEntries(b, dir, up.URL, n, time.Now())
		s := NewStore(&certmagic.FileStorage{Path: dir}, zap.NewNop())
		var done atomic.Int64 // OnDelivery follows the write
		w, _ := NewWorker(s, WorkerConfig{Forward: up.URL, Deliver: newPoster(up.URL, 10*time.Second).deliver,
			OnDelivery: func(e Entry, r Result) {
				if r.Outcome == OutcomeAccepted {
					done.Add(1)
				}
			}})
		b.StartTimer()
		start := time.Now()
		w.Start(ctx)
		for done.Load() < n {
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		b.StopTimer()
		w.Stop()
		if ids, dups := up.distinct(); ids != n || dups != 0 {
			b.Fatalf("%d delivered, %d duplicates", ids, dups)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "entries/s")
		b.StartTimer()
	}
}

// benchDir is a fresh folder for a benchmark's FileStorage: under
// $OUTBOX_BENCH_DIR when set (e.g. /dev/shm, to take the disk's fsync out
// of the numbers), else the test's temporary folder.
func benchDir(b testing.TB) string {
	parent := os.Getenv("OUTBOX_BENCH_DIR")
	if parent == "" {
		return b.TempDir()
	}
	dir, err := os.MkdirTemp(parent, "outbox-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// seedEntries writes n pending entries due at next straight into a
// FileStorage folder (setup, not under test: no fsync).
func seedEntries(b testing.TB, dir, forward string, n int, next time.Time) {
	sched := DefaultSchedule()
	folder := filepath.Join(dir, filepath.FromSlash(namespacePrefix(Namespace(forward))))
	if err := os.MkdirAll(folder, 0o700); err != nil {
		b.Fatal(err)
	}
	now := time.Now().Add(-time.Minute)
	for i := range n {
		id := fmt.Sprintf("2026%028d", i)
		e := sched.newEntry(forward, id, "alipay.trade_status_sync", body(id), "upstream answered 502", now)
		e.NextAttempt = next
		data, _ := encodeEntry(&e)
		if err := os.WriteFile(filepath.Join(folder, keyName(id)+entrySuffix), data, 0o600); err != nil {
			b.Fatal(err)
		}
	}
}
