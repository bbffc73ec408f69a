package outbox

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Entries in a namespace that no Worker of this process serves are
// "unserved": a reload changed a handler's forward URL (or removed the
// handler) while they were pending or dead. Nothing delivers them, so they
// must not go unnoticed: one Worker per process takes a census of them at
// its next scan after a Worker of this process starts or stops (a reload),
// and every censusEvery; the gauges count them (Unserved), and a line at
// WARN names their forward URL and how to move them (Store.Move), again
// every unservedWarnEvery while they stay.
const (
	censusEvery       = time.Minute
	unservedWarnEvery = time.Hour
)

var unserved = struct {
	sync.Mutex
	running bool
	at      time.Time            // when the last census began; zero: none yet
	stats   []Stats              // one per unserved namespace, as of at
	warned  map[string]time.Time // namespace → last WARN about it
}{warned: make(map[string]time.Time)}

// censusDue makes the next scan of any Worker of this process take the
// census: the set of served namespaces changed (register, unregister, which
// hold local: local is always taken before unserved), or entries moved or
// went (Move, Delete).
func censusDue() {
	unserved.Lock()
	unserved.at = time.Time{}
	unserved.Unlock()
}

// Unserved returns the last census of the namespaces that no Worker of this
// process served when it was taken: one Stats per namespace, with Forward
// the forward URL its entries name. A namespace served since is left out.
func Unserved() []Stats {
	unserved.Lock()
	stats := slices.Clone(unserved.stats)
	unserved.Unlock()
	return slices.DeleteFunc(stats, func(s Stats) bool { return served(Namespace(s.Forward)) })
}

// served reports whether a running Worker of this process serves ns.
func served(ns string) bool {
	local.Lock()
	defer local.Unlock()
	return len(local.workers[ns]) > 0
}

// ServedForward returns the forward URL of a running Worker of this process
// that forward names: its forward URL itself, or the same with the password
// redacted when that is unambiguous. ok is false when none does.
func ServedForward(forward string) (url string, ok bool) {
	local.Lock()
	defer local.Unlock()
	var redacted []string
	for _, set := range local.workers {
		for w := range set {
			if w.forward == forward {
				return w.forward, true
			}
			if w.forwardLog == forward && !slices.Contains(redacted, w.forward) {
				redacted = append(redacted, w.forward)
			}
		}
	}
	if len(redacted) == 1 {
		return redacted[0], true
	}
	return "", false
}

// maybeCensus starts the census of unserved namespaces, in the background,
// if no Worker of this process has begun one within censusEvery (so that
// the handlers of one process share one census a minute).
func (w *Worker) maybeCensus(ctx context.Context, now time.Time) {
	unserved.Lock()
	due := !unserved.running && (unserved.at.IsZero() || now.Sub(unserved.at) >= censusEvery)
	if due {
		unserved.running, unserved.at = true, now
	}
	unserved.Unlock()
	if !due {
		return
	}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		w.takeCensus(ctx, now)
	}()
}

// takeCensus counts the unserved namespaces' entries, publishes the counts
// for Unserved and warns about those waiting for a handler.
func (w *Worker) takeCensus(ctx context.Context, now time.Time) {
	stats, err := w.store.census(ctx, served)
	unserved.Lock()
	defer unserved.Unlock()
	unserved.running = false
	if err != nil {
		if ctx.Err() == nil {
			w.logger.Warn("outbox: counting the entries of unserved forward URLs failed", zap.Error(err))
		}
		return
	}
	unserved.stats = stats
	for _, s := range stats {
		w.warnUnserved(s, now)
	}
}

// warnUnserved logs, at most every unservedWarnEvery per namespace, that s's
// pending and dead entries wait for a handler. The caller holds unserved.
func (w *Worker) warnUnserved(s Stats, now time.Time) {
	ns := Namespace(s.Forward)
	if s.Pending+s.Dead == 0 || now.Sub(unserved.warned[ns]) < unservedWarnEvery {
		return
	}
	unserved.warned[ns] = now
	fields := []zap.Field{zap.String("forward", RedactURL(s.Forward)), zap.Int("pending", s.Pending), zap.Int("dead", s.Dead),
		zap.String("fix", "caddy alipay-notify outbox move --from <this forward> --to <the forward of a handler with an outbox>")}
	if !s.OldestPending.IsZero() {
		fields = append(fields, zap.Time("oldest_pending_since", s.OldestPending))
	}
	w.logger.Warn("outbox: entries of a forward URL that no alipay_notify handler of this instance delivers to (was it changed?); nothing delivers them until they are moved", fields...)
}

// census counts, per namespace that isServed does not claim, its entries by
// state (corrupt ones as Corrupt). A namespace with no entry left is not
// reported.
func (s *Store) census(ctx context.Context, isServed func(ns string) bool) ([]Stats, error) {
	nss, err := s.namespaces(ctx)
	if err != nil {
		return nil, err
	}
	var out []Stats
	for _, ns := range nss {
		if isServed(ns) {
			continue
		}
		keys, _, err := s.listNamespace(ctx, ns)
		if err != nil {
			return nil, err
		}
		st := Stats{At: time.Now()}
		for _, l := range s.loadAll(ctx, keys) {
			switch {
			case l.err == nil:
				st.Forward = l.entry.Forward
				st.add(l.entry.State, l.entry.FirstFailure)
			case errors.Is(l.err, ErrNotFound):
			default:
				st.Corrupt++
			}
		}
		if st.Forward != "" {
			out = append(out, st)
		}
	}
	return out, ctx.Err()
}

// add counts one entry of state st whose first failure was firstFailure.
func (s *Stats) add(st State, firstFailure time.Time) {
	switch st {
	case Pending:
		s.Pending++
		if s.OldestPending.IsZero() || firstFailure.Before(s.OldestPending) {
			s.OldestPending = firstFailure
		}
	case Dead:
		s.Dead++
	case Delivered:
		s.Delivered++
	}
}
