package outbox

import (
	"context"
	"errors"
	"fmt"
	"net"
)

// Outcome is what became of one delivery attempt; its values are the
// result label of caddy_alipay_notify_outbox_deliveries_total.
type Outcome string

const (
	// OutcomeAccepted: the upstream answered 2xx.
	OutcomeAccepted Outcome = "accepted"
	// OutcomeRefused: the upstream answered, but not 2xx.
	OutcomeRefused Outcome = "refused"
	// OutcomeError: no answer (connection refused, reset, TLS, DNS, ...).
	OutcomeError Outcome = "error"
	// OutcomeTimeout: no complete answer within the handler's timeout.
	OutcomeTimeout Outcome = "timeout"
)

// Result is what a Deliver func reports for one attempt.
type Result struct {
	Outcome Outcome
	// Status is the upstream's HTTP status, 0 when none arrived.
	Status int
	// Err says why an attempt that was not accepted failed; its text
	// becomes the entry's last_error.
	Err error
}

// Accepted is an attempt the upstream accepted with status (2xx).
func Accepted(status int) Result { return Result{Outcome: OutcomeAccepted, Status: status} }

// Refused is an attempt the upstream answered with a non-2xx status.
func Refused(status int) Result {
	return Result{Outcome: OutcomeRefused, Status: status, Err: fmt.Errorf("upstream answered %d", status)}
}

// Failed is an attempt that got no answer.
func Failed(err error) Result { return Result{Outcome: OutcomeError, Err: err} }

// TimedOut is an attempt that got no complete answer in time.
func TimedOut(err error) Result { return Result{Outcome: OutcomeTimeout, Err: err} }

// Classify maps the outcome of an HTTP POST to a Result: an error that is a
// timeout (context.DeadlineExceeded, or a net.Error whose Timeout is true) is
// OutcomeTimeout, any other error OutcomeError (a refused connection
// included), a 2xx status OutcomeAccepted, any other status OutcomeRefused.
func Classify(status int, err error) Result {
	if err != nil {
		var ne net.Error
		if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return TimedOut(err)
		}
		return Failed(err)
	}
	if status >= 200 && status < 300 {
		return Accepted(status)
	}
	return Refused(status)
}

// errorText is the last_error of a failed result: the error's text, bounded.
func (r Result) errorText() string {
	var s string
	switch {
	case r.Err != nil:
		s = r.Err.Error()
	case r.Status != 0:
		s = fmt.Sprintf("upstream answered %d", r.Status)
	default:
		s = string(r.Outcome)
	}
	return truncate(s, maxErrorText)
}

// maxErrorText bounds last_error.
const maxErrorText = 512

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 {
		n--
	}
	return s[:n] + "…"
}

// valid reports whether r's outcome is one of the four.
func (r Result) valid() bool {
	switch r.Outcome {
	case OutcomeAccepted, OutcomeRefused, OutcomeError, OutcomeTimeout:
		return true
	}
	return false
}
