package outbox

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of DESIGN §9.
var (
	DefaultRetry  = []time.Duration{5 * time.Second, 30 * time.Second, 2 * time.Minute, 10 * time.Minute, 30 * time.Minute, time.Hour}
	DefaultGiveUp = 7 * 24 * time.Hour
	DefaultKeep   = 30 * 24 * time.Hour
)

// deadSlack: a pending entry found more than this past its give_up deadline
// (no instance ran when its last attempt was due, or give_up was shortened)
// becomes dead without another attempt.
const deadSlack = time.Minute

// Schedule is a handler's outbox timing: the retry delays, give_up and keep.
type Schedule struct {
	// Retry lists the delay before the first outbox delivery (after the
	// failed inline attempt), then between deliveries; the last repeats.
	Retry []time.Duration
	// GiveUp: an entry still undelivered this long after its first failure
	// (or after the replay that revived it) becomes dead.
	GiveUp time.Duration
	// Keep: delivered and dead entries are removed this long after they
	// became so.
	Keep time.Duration
}

// DefaultSchedule is retry 5s 30s 2m 10m 30m 1h, give_up 7d, keep 30d.
func DefaultSchedule() Schedule {
	return Schedule{Retry: append([]time.Duration(nil), DefaultRetry...), GiveUp: DefaultGiveUp, Keep: DefaultKeep}
}

// WithDefaults fills the unset (empty or zero) fields with the defaults.
func (s Schedule) WithDefaults() Schedule {
	if len(s.Retry) == 0 {
		s.Retry = append([]time.Duration(nil), DefaultRetry...)
	}
	if s.GiveUp == 0 {
		s.GiveUp = DefaultGiveUp
	}
	if s.Keep == 0 {
		s.Keep = DefaultKeep
	}
	return s
}

// Validate reports a schedule that cannot work: no delays, or a delay,
// give_up or keep that is not positive.
func (s Schedule) Validate() error {
	if len(s.Retry) == 0 {
		return errors.New("retry needs at least one delay")
	}
	for i, d := range s.Retry {
		if d <= 0 {
			return fmt.Errorf("retry delay %d (%s) must be positive", i+1, d)
		}
	}
	if s.GiveUp <= 0 {
		return fmt.Errorf("give_up (%s) must be positive", s.GiveUp)
	}
	if s.Keep <= 0 {
		return fmt.Errorf("keep (%s) must be positive", s.Keep)
	}
	return nil
}

// Delay is the wait after the n-th attempt of a give_up window (n ≥ 1):
// Retry[n-1], the last delay once the list is exhausted.
func (s Schedule) Delay(n int) time.Duration {
	if len(s.Retry) == 0 {
		return DefaultRetry[0]
	}
	i := n - 1
	if i < 0 {
		i = 0
	}
	if i >= len(s.Retry) {
		i = len(s.Retry) - 1
	}
	return s.Retry[i]
}

// deadline is when e's give_up window closes.
func (s Schedule) deadline(e *Entry) time.Time { return e.WindowStart.Add(s.GiveUp) }

// expired reports whether a pending e is so far past its deadline that it
// dies without another attempt.
func (s Schedule) expired(e *Entry, now time.Time) bool {
	return e.State == Pending && now.After(s.deadline(e).Add(deadSlack))
}

// newEntry is a fresh entry for a webhook whose first (inline) attempt
// failed at now.
func (s Schedule) newEntry(forward, id, typ string, body []byte, errMsg string, now time.Time) Entry {
	e := Entry{
		ID:           id,
		Forward:      forward,
		Type:         typ,
		Body:         append([]byte(nil), body...),
		State:        Pending,
		FirstFailure: now,
		WindowStart:  now,
	}
	s.failed(&e, errMsg, now)
	return e
}

// failed applies a failed attempt made at now to e.
//
// A pending entry counts it and is rescheduled Delay(window attempts)
// later, but never past its deadline: the last attempt falls on the
// deadline, and when that one fails (now at or after the deadline) the
// entry is dead. A dead entry counts it and stays dead. A delivered entry is
// left alone (the upstream already has the webhook), and failed reports
// false: nothing to write.
func (s Schedule) failed(e *Entry, errMsg string, now time.Time) bool {
	if e.State == Delivered {
		return false
	}
	e.Attempts++
	e.LastError = errMsg
	e.LastAttempt = now
	e.UpdatedAt = now
	if e.State == Dead {
		return true
	}
	e.WindowAttempts++
	deadline := s.deadline(e)
	if !now.Before(deadline) {
		e.die(now)
		return true
	}
	next := now.Add(s.Delay(e.WindowAttempts))
	if next.After(deadline) {
		next = deadline
	}
	e.NextAttempt = next
	return true
}

// accepted applies an accepted attempt made at now: e is delivered. It
// reports false when e already was (nothing to write).
func (e *Entry) accepted(now time.Time) bool {
	if e.State == Delivered {
		return false
	}
	e.Attempts++
	e.State = Delivered
	e.DeliveredAt = now
	e.DeadAt = time.Time{}
	e.NextAttempt = time.Time{}
	e.LastAttempt = now
	e.UpdatedAt = now
	return true
}

// die makes e dead at now.
func (e *Entry) die(now time.Time) {
	e.State = Dead
	e.DeadAt = now
	e.NextAttempt = time.Time{}
	e.UpdatedAt = now
}

// replay makes e pending with its next attempt at now. A dead or delivered
// entry also gets a fresh give_up window (and starts the retry list over);
// a pending one keeps its window.
func (e *Entry) replay(now time.Time) {
	if e.State != Pending {
		e.WindowStart = now
		e.WindowAttempts = 0
		e.DeliveredAt = time.Time{}
		e.DeadAt = time.Time{}
		e.State = Pending
	}
	e.NextAttempt = now
	e.UpdatedAt = now
}
