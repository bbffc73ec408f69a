package alipay

import "errors"

// The two kinds of refusal, for callers that answer Alipay: a malformed
// notification (HTTP 400 in the Caddy handler) is one that cannot be read
// in exactly one way, whoever signed it; one that does not verify (403) is
// well-formed but not signed by any configured key. Every error of the
// package wraps one of them; the specific sentinels below say why.
var (
	// ErrMalformed: the body, a parameter or sign cannot be read as Alipay
	// writes them, or the signed string has more than one reading.
	ErrMalformed = errors.New("malformed notification")
	// ErrNotVerified: well-formed, but no key verifies the signature.
	ErrNotVerified = errors.New("signature does not verify")
)

// Specific reasons. Each wraps ErrMalformed or ErrNotVerified.
var (
	// ErrEmptyBody: no parameters at all.
	ErrEmptyBody = newSentinel(ErrMalformed, "empty body")
	// ErrEncoding: a malformed percent-escape, or an empty parameter name.
	ErrEncoding = newSentinel(ErrMalformed, "malformed form encoding")
	// ErrParameterName: a name other than ASCII letters, digits and '_'.
	ErrParameterName = newSentinel(ErrMalformed, "parameter name is not ASCII letters, digits and _")
	// ErrDuplicateParameter: a name sent twice.
	ErrDuplicateParameter = newSentinel(ErrMalformed, "parameter appears more than once")
	// ErrCharset: an unsupported charset, or a value not valid in it.
	ErrCharset = newSentinel(ErrMalformed, "value not valid in its charset")
	// ErrNoSign: no sign parameter.
	ErrNoSign = newSentinel(ErrMalformed, "no sign parameter")
	// ErrSignType: sign_type missing or not one of RSA2, RSA, SM2 (and MD5
	// with an MD5 key).
	ErrSignType = newSentinel(ErrMalformed, "unsupported sign_type")
	// ErrSignEncoding: sign is not canonical standard base64.
	ErrSignEncoding = newSentinel(ErrMalformed, "sign is not canonical base64")
	// ErrAmbiguous: the signed string that verified has another reading (a
	// value embeds another parameter): a re-shaped notification.
	ErrAmbiguous = newSentinel(ErrMalformed, "a value embeds another parameter")
	// ErrNotNotification: not an asynchronous notification (no notify_id,
	// a notify_id that is not a token, or no notify_time nor
	// utc_timestamp), such as a return_url parameter set.
	ErrNotNotification = newSentinel(ErrMalformed, "not a notification")
	// ErrTime: notify_time or utc_timestamp that cannot be parsed.
	ErrTime = newSentinel(ErrMalformed, "unparseable notify_time or utc_timestamp")
	// ErrSignatureMismatch: no configured key verifies the signature.
	ErrSignatureMismatch = newSentinel(ErrNotVerified, "signature does not verify with any configured key")
)

// Error is a refusal: its message is the reason in words, for logs, and it
// matches, with errors.Is, its specific sentinel (ErrAmbiguous, ...) and its
// kind (ErrMalformed or ErrNotVerified).
type Error struct {
	kind     error  // ErrMalformed or ErrNotVerified
	sentinel *Error // the specific reason; nil for a sentinel itself
	reason   string
	// wraps backs what Unwrap returns (the sentinel, then the kind; the
	// kind alone for a sentinel), so that errors.Is allocates nothing.
	wraps [2]error
}

// Error returns the reason in words.
func (e *Error) Error() string { return e.reason }

// Unwrap returns the specific sentinel and the kind, for errors.Is. The
// slice is the error's own: callers must not change it.
func (e *Error) Unwrap() []error {
	if e.sentinel == nil {
		return e.wraps[:1:1]
	}
	return e.wraps[:2:2]
}

// newSentinel returns a specific reason of kind.
func newSentinel(kind error, reason string) *Error {
	return &Error{kind: kind, reason: reason, wraps: [2]error{kind}}
}

// refuse returns an error that matches sentinel, with reason as its message.
func refuse(sentinel *Error, reason string) *Error {
	return &Error{kind: sentinel.kind, sentinel: sentinel, reason: reason, wraps: [2]error{sentinel, sentinel.kind}}
}
