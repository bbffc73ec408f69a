package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Move hands the entries of the forward URL from to the handler forwarding
// to to: the way out when a reload changed a handler's forward URL while
// entries were pending, which would otherwise stay in the old URL's
// namespace, where no Worker delivers them. from is matched against each
// entry's forward URL as stored or as shown with its password redacted (as
// the admin API lists it).
//
// A moved entry keeps its id, type, body, attempts and state; a pending one
// is due at now (within its give_up window as before). When to's namespace
// already holds the id (Alipay's retry went to the new URL), that entry
// stays as it is and the old one is only removed. Each entry is written to
// its new place durably before its old one is deleted, so a crash in
// between leaves both, and a second Move finishes the job. Move returns
// how many entries it moved or merged.
func (s *Store) Move(ctx context.Context, from, to string, now time.Time) (int, error) {
	if from == "" || to == "" {
		return 0, errors.New("outbox: a move needs the forward URL to move from and the one to move to")
	}
	dest := Namespace(to)
	nss, err := s.namespaces(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	touched := map[string]bool{}
	defer func() {
		s.announceReplay(ctx, touched)
		censusDue()
	}()
	for _, ns := range nss {
		if ns == dest {
			continue
		}
		keys, _, err := s.listNamespace(ctx, ns)
		if err != nil {
			return n, err
		}
		if forward, ok := s.forwardOf(ctx, keys); !ok || !NamesForward(from, forward) {
			continue // not from's: its entries are not read
		}
		for _, l := range s.loadAll(ctx, keys) {
			if l.err != nil {
				continue
			}
			if err := s.moveOne(ctx, l.key, l.entry, to, now); err != nil {
				return n, err
			}
			touched[dest] = true
			n++
		}
	}
	return n, nil
}

// forwardOf is the forward URL of the namespace whose entry keys are keys,
// read from its first readable entry (every entry of a namespace names the
// same one); ok is false when none is readable.
func (s *Store) forwardOf(ctx context.Context, keys []string) (forward string, ok bool) {
	for _, key := range keys {
		if e, err := s.load(ctx, key); err == nil {
			return e.Forward, true
		}
	}
	return "", false
}

// moveOne writes e (stored at key) into the namespace of to, unless an entry
// with its id is there already, then deletes key.
func (s *Store) moveOne(ctx context.Context, key string, e Entry, to string, now time.Time) error {
	target := entryKey(Namespace(to), e.ID)
	_, err := s.load(ctx, target)
	var corrupt *CorruptError
	switch {
	case err == nil:
		// The handler's own record of this id wins.
	case errors.Is(err, ErrNotFound), errors.As(err, &corrupt):
		e.Forward = to
		if e.State == Pending {
			e.NextAttempt = now
		}
		e.UpdatedAt = now
		if err := s.put(ctx, &e, true); err != nil {
			return err
		}
	default:
		return err
	}
	if err := s.storage.Delete(ctx, key); err != nil {
		return fmt.Errorf("outbox: deleting %s after moving it to %s: %w", key, target, err)
	}
	if err := s.syncDir(key); err != nil {
		s.logger.Warn("outbox: moved entry may reappear in its old place after a crash", zap.String("key", key), zap.Error(err))
	}
	ns, _ := splitEntryKey(key)
	notifyLocal(ns, key, nil)
	return nil
}
