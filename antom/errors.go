package antom

import "errors"

// The two classes every error about a request belongs to (the errors of
// ParsePublicKey, NewKeyRing and Sign are configuration errors, in neither
// class). A caller answering HTTP needs only these: ErrMalformed is a 400 (the request cannot be an
// Antom notification as Antom sends them, so retrying it cannot help), and
// ErrNotVerified is a 403 (well formed, but no configured key signed it).
var (
	// ErrMalformed is wrapped by every error about the shape of a request:
	// a missing header, a Signature header that does not parse, an unknown
	// algorithm, a signature that is not percent-encoded base64, an
	// unparseable Request-Time, a body that is not one JSON object.
	ErrMalformed = errors.New("antom: malformed request")

	// ErrNotVerified is wrapped by every error about a well-formed request
	// whose signature does not come from a configured key.
	ErrNotVerified = errors.New("antom: signature not verified")
)

// The specific errors. Each wraps ErrMalformed or ErrNotVerified (and
// ErrDuplicateKey also wraps ErrMalformedBody), so errors.Is works at
// either level; the errors returned by the functions of this package add
// detail to these with fmt.Errorf("%w: ...").
var (
	// ErrMissingHeader: Client-Id, Request-Time or Signature is absent or
	// empty. The error is a *MissingHeaderError naming the header.
	ErrMissingHeader = classified("antom: missing header", ErrMalformed)

	// ErrRepeatedHeader: Client-Id, Request-Time or Signature came more
	// than once. Which value was signed would be a guess, and readers
	// disagree on which one counts (the first, the last, all joined).
	ErrRepeatedHeader = classified("antom: header sent more than once", ErrMalformed)

	// ErrMalformedSignatureHeader: the Signature header is not a list of
	// name=value fields with one algorithm and one non-empty signature.
	ErrMalformedSignatureHeader = classified("antom: malformed Signature header", ErrMalformed)

	// ErrUnsupportedAlgorithm: the Signature header names an algorithm
	// other than RSA256, the only one Antom uses. A 400 rather than a 403:
	// no key could verify it, and the sender should know why.
	ErrUnsupportedAlgorithm = classified("antom: unsupported signature algorithm", ErrMalformed)

	// ErrBadSignatureEncoding: the signature is not percent-encoded
	// canonical standard base64.
	ErrBadSignatureEncoding = classified("antom: signature is not percent-encoded base64", ErrMalformed)

	// ErrBadClientID: the Client-Id contains a '.', which would make the
	// signed content (<Client-Id>.<Request-Time>.<body>) ambiguous.
	ErrBadClientID = classified("antom: malformed Client-Id", ErrMalformed)

	// ErrBadRequestTime: the Request-Time is neither epoch milliseconds nor
	// an RFC 3339 date-time.
	ErrBadRequestTime = classified("antom: malformed Request-Time", ErrMalformed)

	// ErrMalformedBody: the body is not exactly one JSON object in valid
	// UTF-8, or its notifyType is not a string.
	ErrMalformedBody = classified("antom: malformed body", ErrMalformed)

	// ErrDuplicateKey: an object of the body, at any depth, has the same
	// key twice (compared after unescaping). Parsers disagree on which
	// value wins, so the body could mean two things.
	ErrDuplicateKey = classified("antom: duplicate key in body", ErrMalformedBody)

	// ErrSignatureMismatch: the signature verifies with none of the keys.
	ErrSignatureMismatch = classified("antom: signature does not verify", ErrNotVerified)

	// ErrUnknownClient: Verify was called on a nil *KeyRing, which stands
	// for a Client-Id the caller has no keys for (see KeyRing.Verify).
	ErrUnknownClient = classified("antom: unknown Client-Id", ErrNotVerified)
)

// classifiedError is a sentinel that belongs to a class: errors.Is(e, class)
// holds through Unwrap.
type classifiedError struct {
	msg   string
	class error
}

func classified(msg string, class error) error { return &classifiedError{msg, class} }

func (e *classifiedError) Error() string { return e.msg }
func (e *classifiedError) Unwrap() error { return e.class }

// MissingHeaderError reports an absent or empty header. It matches
// ErrMissingHeader (and so ErrMalformed) with errors.Is.
type MissingHeaderError struct {
	// Name is the header's canonical name: "Client-Id", "Request-Time" or
	// "Signature".
	Name string
}

// Error names the missing header.
func (e *MissingHeaderError) Error() string { return "antom: missing header " + e.Name }

// Unwrap makes errors.Is(err, ErrMissingHeader) hold.
func (e *MissingHeaderError) Unwrap() error { return ErrMissingHeader }
