package cluster

// What the outbox may rely on in the storage that a cluster shares,
// caddy-storage-redis v1.8.1, checked against a real Redis: its locks (no
// TryLock, a 5 s TTL refreshed every 3 s, a 1 s poll), and how it answers
// for missing keys and directories. Should an upgrade change any of this,
// these tests say so before the outbox tests do.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
)

// TestRedisStorageLocks: Lock blocks (polling every second) until the
// holder unlocks or its lock expires; a lock whose holder is gone expires
// within its 5 s TTL; a live holder keeps it past the TTL; Unlock by a
// non-holder does nothing; Lock with a short deadline is the way to "try".
func TestRedisStorageLocks(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	rc := dialRedis(t, redisAddr)
	const prefix = "locks-test"

	t.Run("no TryLock", func(t *testing.T) {
		s := openStorage(t, redisAddr, prefix)
		if _, ok := any(s).(certmagic.TryLocker); ok {
			t.Errorf("caddy-storage-redis now implements certmagic.TryLocker: the outbox could use it (and cluster/README.md should say so)")
		}
	})

	t.Run("try with a deadline, handoff on unlock", func(t *testing.T) {
		t.Parallel()
		s1, s2 := openStorage(t, redisAddr, prefix), openStorage(t, redisAddr, prefix)
		ctx := context.Background()
		const name = "outbox/handoff"
		if err := s1.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
		key := prefix + "/locks/" + name
		if ttl, _ := rc.do(t, "PTTL", key).(int64); ttl <= 0 || ttl > 5000 {
			t.Errorf("PTTL %s = %d ms, want within (0, 5000]", key, ttl)
		}

		// "TryLock": a deadline shorter than the 1 s poll makes one attempt.
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		began := time.Now()
		err := s2.Lock(tctx, name)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lock of a held lock with a 200 ms deadline: %v, want context.DeadlineExceeded", err)
		}
		t.Logf("a failed try with a 200 ms deadline took %v", time.Since(began).Round(time.Millisecond))

		// Unlock by an instance that does not hold the lock does nothing.
		if err := s2.Unlock(ctx, name); err != nil {
			t.Errorf("Unlock by a non-holder: %v, want nil", err)
		}
		if n := rc.do(t, "EXISTS", key); n != int64(1) {
			t.Fatalf("Unlock by a non-holder released the lock (EXISTS = %v)", n)
		}

		got := make(chan time.Time, 1)
		go func() {
			if err := s2.Lock(ctx, name); err == nil {
				got <- time.Now()
			}
			close(got)
		}()
		time.Sleep(1500 * time.Millisecond)
		select {
		case <-got:
			t.Fatal("a second instance got a lock that was held")
		default:
		}
		unlocked := time.Now()
		if err := s1.Unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
		select {
		case at, ok := <-got:
			if !ok {
				t.Fatal("the waiting Lock failed")
			}
			wait := at.Sub(unlocked)
			t.Logf("handoff %v after Unlock (poll: 1 s)", wait.Round(time.Millisecond))
			if wait > 2500*time.Millisecond {
				t.Errorf("handoff took %v after Unlock, want ≤ the 1 s poll (+ slack)", wait)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no handoff within 5 s of Unlock")
		}
		if err := s2.Unlock(ctx, name); err != nil {
			t.Fatal(err)
		}
		if n := rc.do(t, "EXISTS", key); n != int64(0) {
			t.Errorf("lock still in Redis after Unlock (EXISTS = %v)", n)
		}
	})

	t.Run("refreshed while held, expires when the holder is gone", func(t *testing.T) {
		t.Parallel()
		holder, other := openStorage(t, redisAddr, prefix), openStorage(t, redisAddr, prefix)
		ctx := context.Background()
		const name = "outbox/crash"
		if err := holder.Lock(ctx, name); err != nil {
			t.Fatal(err)
		}
		time.Sleep(6 * time.Second) // past the 5 s TTL: only the refresh keeps it
		tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		err := other.Lock(tctx, name)
		cancel()
		if err == nil {
			t.Fatal("the lock expired while its holder was alive: the refresh did not keep it")
		}

		holder.Cleanup() // the "crash": its client closes, the refresh stops
		crashed := time.Now()
		lctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		if err := other.Lock(lctx, name); err != nil {
			t.Fatalf("the lock of a gone holder was not taken over within 15 s: %v", err)
		}
		took := time.Since(crashed)
		t.Logf("lock of a gone holder taken over %v after it went (TTL 5 s, refresh 3 s, poll 1 s)", took.Round(time.Millisecond))
		if took > 8*time.Second {
			t.Errorf("takeover took %v, want ≤ 5 s TTL + 1 s poll (+ slack)", took)
		}
		other.Unlock(ctx, name)
	})
}

// TestClusterStaleLockTakenOver: a lock left in Redis by a crashed instance
// delays a Caddy instance's locked work until it expires, not longer. The
// test plants certmagic's "storage_clean" lock, as a holder that died would
// leave it (3 s to live, never refreshed), before starting an instance; the
// instance's storage cleaning runs once it expired.
func TestClusterStaleLockTakenOver(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	bin := buildCaddy(t)
	rc := dialRedis(t, redisAddr)
	const prefix = "stale-lock"
	const ttl = 3 * time.Second

	rc.do(t, "SET", prefix+"/locks/storage_clean", "token-of-a-crashed-instance", "PX", fmt.Sprint(ttl.Milliseconds()))
	planted := time.Now()

	p := newCaddyPorts(t)
	in := startCaddy(t, bin, clusterGlobals(p, redisAddr, prefix)+fmt.Sprintf(":%d {\n\trespond \"ok\"\n}\n", p.HTTP))
	if code, body := in.get(t, "/"); code != 200 || body != "ok" {
		t.Errorf("GET / = %d %q while the lock was held, want 200 \"ok\"", code, body)
	}
	cleaned := in.waitLog(t, 15*time.Second, "cleaning storage unit", nil)
	after := cleaned.time().Sub(planted)
	t.Logf("storage cleaning began %v after the stale lock was planted (its TTL: %v)", after.Round(time.Millisecond), ttl)
	if after < ttl-200*time.Millisecond {
		t.Errorf("cleaning began %v after the lock was planted: before it expired (%v), so it was not waiting for it", after, ttl)
	}
	if after > ttl+4*time.Second {
		t.Errorf("cleaning began %v after the lock was planted: long after it expired (%v)", after, ttl)
	}
	in.waitLog(t, 5*time.Second, "finished cleaning storage units", nil)
	if n := rc.do(t, "EXISTS", prefix+"/locks/storage_clean"); n != int64(0) {
		t.Errorf("storage_clean lock still there after the cleaning (EXISTS = %v)", n)
	}
}

// TestRedisStorageMissing: how the storage answers for what is not there,
// and how List sees directories; the outbox's scan relies on these.
func TestRedisStorageMissing(t *testing.T) {
	t.Parallel()
	redisAddr := startRedis(t)
	s := openStorage(t, redisAddr, "missing-test")
	ctx := context.Background()

	if _, err := s.Load(ctx, "outbox/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	if _, err := s.Stat(ctx, "outbox/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat of a missing key: %v, want fs.ErrNotExist", err)
	}
	if err := s.Delete(ctx, "outbox/nope"); err != nil {
		t.Errorf("Delete of a missing key: %v, want nil", err)
	}
	if s.Exists(ctx, "outbox/nope") {
		t.Error("Exists of a missing key: true")
	}
	if keys, err := s.List(ctx, "outbox", true); err != nil || len(keys) != 0 {
		t.Errorf("List of a missing directory = %q, %v; want none, nil (not fs.ErrNotExist)", keys, err)
	}

	for _, k := range []string{"outbox/h1/a", "outbox/h1/b", "outbox/h2/c"} {
		if err := s.Store(ctx, k, []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	top, err := s.List(ctx, "outbox", false)
	slices.Sort(top)
	if err != nil || !slices.Equal(top, []string{"outbox/h1", "outbox/h2"}) {
		t.Errorf("List(outbox, false) = %q, %v; want the two directories", top, err)
	}
	all, err := s.List(ctx, "outbox", true)
	slices.Sort(all)
	if err != nil || !slices.Equal(all, []string{"outbox/h1/a", "outbox/h1/b", "outbox/h2/c"}) {
		t.Errorf("List(outbox, true) = %q, %v; want the three keys", all, err)
	}
	if err := s.Delete(ctx, "outbox/h2/c"); err != nil {
		t.Fatal(err)
	}
	if all, _ := s.List(ctx, "outbox", false); slices.Contains(all, "outbox/h2") {
		t.Errorf("List(outbox, false) = %q: the emptied directory is still listed", all)
	}
	info, err := s.Stat(ctx, "outbox/h1/a")
	if err != nil || info.Size != int64(len("outbox/h1/a")) || !info.IsTerminal || time.Since(info.Modified) > time.Minute {
		t.Errorf("Stat = %+v, %v", info, err)
	}
}
