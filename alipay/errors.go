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
	ErrEmptyBody = &Error{kind: ErrMalformed, reason: "empty body"}
	// ErrEncoding: a malformed percent-escape, or an empty parameter name.
	ErrEncoding = &Error{kind: ErrMalformed, reason: "malformed form encoding"}
	// ErrParameterName: a name other than ASCII letters, digits and '_'.
	ErrParameterName = &Error{kind: ErrMalformed, reason: "parameter name is not ASCII letters, digits and _"}
	// ErrDuplicateParameter: a name sent twice.
	ErrDuplicateParameter = &Error{kind: ErrMalformed, reason: "parameter appears more than once"}
	// ErrCharset: an unsupported charset, or a value not valid in it.
	ErrCharset = &Error{kind: ErrMalformed, reason: "value not valid in its charset"}
	// ErrNoSign: no sign parameter.
	ErrNoSign = &Error{kind: ErrMalformed, reason: "no sign parameter"}
	// ErrSignType: sign_type missing or not one of RSA2, RSA, SM2 (and MD5
	// with an MD5 key).
	ErrSignType = &Error{kind: ErrMalformed, reason: "unsupported sign_type"}
	// ErrSignEncoding: sign is not canonical standard base64.
	ErrSignEncoding = &Error{kind: ErrMalformed, reason: "sign is not canonical base64"}
	// ErrAmbiguous: the signed string that verified has another reading (a
	// value embeds another parameter): a re-shaped notification.
	ErrAmbiguous = &Error{kind: ErrMalformed, reason: "a value embeds another parameter"}
	// ErrNotNotification: not an asynchronous notification (no notify_id,
	// a notify_id that is not a token, or no notify_time nor
	// utc_timestamp), such as a return_url parameter set.
	ErrNotNotification = &Error{kind: ErrMalformed, reason: "not a notification"}
	// ErrTime: notify_time or utc_timestamp that cannot be parsed.
	ErrTime = &Error{kind: ErrMalformed, reason: "unparseable notify_time or utc_timestamp"}
	// ErrSignatureMismatch: no configured key verifies the signature.
	ErrSignatureMismatch = &Error{kind: ErrNotVerified, reason: "signature does not verify with any configured key"}
)

// Error is a refusal: its message is the reason in words, for logs, and it
// matches, with errors.Is, its specific sentinel (ErrAmbiguous, ...) and its
// kind (ErrMalformed or ErrNotVerified).
type Error struct {
	kind     error  // ErrMalformed or ErrNotVerified
	sentinel *Error // the specific reason; nil for a sentinel itself
	reason   string
}

// Error returns the reason in words.
func (e *Error) Error() string { return e.reason }

// Unwrap returns the kind and the specific sentinel, for errors.Is.
func (e *Error) Unwrap() []error {
	if e.sentinel == nil {
		return []error{e.kind}
	}
	return []error{e.sentinel, e.kind}
}

// refuse returns an error that matches sentinel, with reason as its message.
func refuse(sentinel *Error, reason string) *Error {
	return &Error{kind: sentinel.kind, sentinel: sentinel, reason: reason}
}
