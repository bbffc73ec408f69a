package outbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// State is where an entry stands.
type State string

const (
	// Pending: the outbox delivers it at NextAttempt.
	Pending State = "pending"
	// Dead: give_up passed; no more automatic delivery until a replay.
	Dead State = "dead"
	// Delivered: the upstream accepted it (2xx), from the outbox or inline.
	Delivered State = "delivered"
)

// Valid reports whether s is one of the three states.
func (s State) Valid() bool { return s == Pending || s == Dead || s == Delivered }

// ParseState parses a state filter as the admin API and the CLI take it:
// "pending", "dead", "delivered", or "" (every state).
func ParseState(s string) (State, error) {
	st := State(s)
	if s == "" || st.Valid() {
		return st, nil
	}
	return "", fmt.Errorf("unknown outbox state %q (want pending, dead or delivered)", s)
}

// Entry is one webhook in the outbox: everything needed to send the same
// webhook again (ID, Type, Body; the signature and webhook-timestamp are made
// per attempt by the caller) and its delivery history.
//
// Its JSON form is the admin API's object: snake_case, times in RFC 3339
// (UTC), next_attempt present only while pending, body as base64.
type Entry struct {
	// ID is the webhook-id (Alipay's notify_id, or antom_<hash>). Unique
	// within a namespace.
	ID string `json:"id"`
	// State is pending, dead or delivered.
	State State `json:"state"`
	// Type is the webhook's type (alipay.trade_status_sync, ...).
	Type string `json:"type"`
	// Attempts counts every delivery attempt, the inline one included.
	Attempts int `json:"attempts"`
	// FirstFailure is when the first attempt failed (the entry's creation).
	FirstFailure time.Time `json:"first_failure"`
	// NextAttempt is when the outbox delivers it next; zero unless pending.
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// LastError says why the last failed attempt failed.
	LastError string `json:"last_error,omitempty"`
	// Forward is the forward URL of the handler the entry belongs to; it
	// names the namespace.
	Forward string `json:"forward"`

	// LastAttempt is when the last attempt (of any outcome) was made.
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	// WindowStart starts the give_up window: FirstFailure, or the moment
	// a dead or delivered entry was last replayed. The entry dies at
	// WindowStart + give_up.
	WindowStart time.Time `json:"window_start"`
	// WindowAttempts counts the attempts since WindowStart; it picks the
	// next delay from the retry list.
	WindowAttempts int `json:"window_attempts"`
	// DeliveredAt is when the upstream accepted it; zero unless delivered.
	DeliveredAt time.Time `json:"delivered_at,omitzero"`
	// DeadAt is when it became dead; zero unless dead.
	DeadAt time.Time `json:"dead_at,omitzero"`
	// UpdatedAt is the time of the last change.
	UpdatedAt time.Time `json:"updated_at"`

	// Body is the exact JSON body that was sent, byte for byte.
	Body []byte `json:"body,omitempty"`
}

// DoneAt is when a delivered or dead entry left the pending state (keep is
// counted from it; UpdatedAt if that time is missing); zero for a pending
// entry.
func (e *Entry) DoneAt() time.Time {
	var t time.Time
	switch e.State {
	case Delivered:
		t = e.DeliveredAt
	case Dead:
		t = e.DeadAt
	default:
		return time.Time{}
	}
	if t.IsZero() {
		t = e.UpdatedAt
	}
	return t
}

// validate checks what every stored entry must satisfy.
func (e *Entry) validate() error {
	switch {
	case e.ID == "":
		return errors.New("entry has no id")
	case e.Forward == "":
		return errors.New("entry has no forward URL")
	case !e.State.Valid():
		return fmt.Errorf("entry has unknown state %q", e.State)
	case e.Attempts < 0 || e.WindowAttempts < 0:
		return errors.New("entry has a negative attempt count")
	}
	return nil
}

// record is an entry as stored: the Entry's fields, a format version, and
// the body as a JSON string when it is valid UTF-8 (readable in the file,
// and exact: encoding/json round-trips valid UTF-8 strings byte for byte),
// else as base64. Its Body fields hide the Entry's own.
type record struct {
	V int `json:"v"`
	Entry
	Body       *string `json:"body,omitempty"`
	BodyBase64 []byte  `json:"body_base64,omitempty"`
}

const recordVersion = 1

func encodeEntry(e *Entry) ([]byte, error) {
	r := record{V: recordVersion, Entry: e.inUTC()}
	if utf8.Valid(e.Body) {
		s := string(e.Body)
		r.Body = &s
	} else {
		r.BodyBase64 = e.Body
	}
	return json.Marshal(&r)
}

// inUTC is e with its times in UTC, as they are stored.
func (e Entry) inUTC() Entry {
	for _, t := range []*time.Time{&e.FirstFailure, &e.NextAttempt, &e.LastAttempt, &e.WindowStart, &e.DeliveredAt, &e.DeadAt, &e.UpdatedAt} {
		*t = utc(*t)
	}
	return e
}

func decodeEntry(data []byte) (Entry, error) {
	var r record
	if err := json.Unmarshal(data, &r); err != nil {
		return Entry{}, err
	}
	if r.V != recordVersion {
		return Entry{}, fmt.Errorf("unknown record version %d", r.V)
	}
	e := r.Entry
	e.Body = r.BodyBase64
	if r.Body != nil {
		e.Body = []byte(*r.Body)
	}
	if err := e.validate(); err != nil {
		return Entry{}, err
	}
	return e, nil
}

// utc drops the location and the monotonic reading; zero stays zero.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}
