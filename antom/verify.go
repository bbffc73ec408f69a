package antom

import (
	"crypto/sha256"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Request holds what an Antom notification carried, exactly as received:
// the signature covers these strings and bytes, not their meaning, so
// nothing may be normalized on the way (no trimming, no unescaping, no
// re-encoding of the body).
type Request struct {
	// Method is the HTTP method (Antom always POSTs; the caller may refuse
	// other methods before verifying).
	Method string

	// URI is the request target as the request line carried it: path and
	// query, encoded as received (net/http's Request.RequestURI). Antom
	// signs the path and query only, so for a request line in absolute
	// form (http://host/path) the caller passes the path and query. Behind
	// a rewrite, the original URI.
	URI string

	// ClientID, RequestTime and Signature are the values of the Client-Id,
	// Request-Time and Signature headers.
	ClientID    string
	RequestTime string
	Signature   string

	// Body is the exact body.
	Body []byte
}

// NewRequest is the Request of an HTTP request: its method, its URI as
// received (see Request.URI), the values of the three headers that Antom
// signs or signs with, and the exact body. A header sent more than once is
// an ErrRepeatedHeader; an absent one is left empty (Verify refuses it).
func NewRequest(method, uri string, header http.Header, body []byte) (*Request, error) {
	r := &Request{Method: method, URI: uri, Body: body}
	for _, f := range []struct {
		name string
		into *string
	}{{"Client-Id", &r.ClientID}, {"Request-Time", &r.RequestTime}, {"Signature", &r.Signature}} {
		values := header.Values(f.name)
		if len(values) > 1 {
			return nil, fmt.Errorf("%w: %s, %d times", ErrRepeatedHeader, f.name, len(values))
		}
		if len(values) == 1 {
			*f.into = values[0]
		}
	}
	return r, nil
}

// AppendSignedContent appends the content Antom signs to dst and returns
// the extended slice:
//
//	<Method> <URI>\n<ClientID>.<RequestTime>.<Body>
//
// Use AppendSignedContent(nil) to log what was checked when a signature does
// not verify.
func (r *Request) AppendSignedContent(dst []byte) []byte {
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, r.URI...)
	dst = append(dst, '\n')
	dst = append(dst, r.ClientID...)
	dst = append(dst, '.')
	dst = append(dst, r.RequestTime...)
	dst = append(dst, '.')
	return append(dst, r.Body...)
}

// Verified is a request that Verify accepted.
type Verified struct {
	// Notification holds the notifyType and the body as received.
	Notification

	// RequestTime is the parsed Request-Time, for an age check and as the
	// time the notification was sent.
	RequestTime time.Time

	// KeyVersion is the Signature header's keyVersion (1 when absent),
	// for logs.
	KeyVersion int

	// Key is the index in the KeyRing of the key that verified: during a
	// rotation, it tells which key Antom uses.
	Key int
}

// Verify checks an Antom request: first its shape, then its signature
// against the ring's keys in order. The structural checks, in order:
//
//   - Method and URI are set (the caller's duty; ErrMalformed),
//   - Client-Id, Request-Time and Signature are present and non-empty
//     (*MissingHeaderError, ErrMissingHeader),
//   - Client-Id has no '.' (ErrBadClientID; see the package documentation),
//   - the Signature header parses (ErrMalformedSignatureHeader,
//     ErrUnsupportedAlgorithm) and its signature decodes
//     (ErrBadSignatureEncoding),
//   - Request-Time parses (ErrBadRequestTime),
//   - the body follows ParseNotification's rules (ErrMalformedBody,
//     ErrDuplicateKey).
//
// All of these wrap ErrMalformed. Then, on a well-formed request, the
// signature must verify with one of the keys (else ErrSignatureMismatch,
// which wraps ErrNotVerified). A caller with one KeyRing per Client-Id may
// call Verify on the nil *KeyRing it finds for an unknown client: the
// structural checks still run, so a malformed request gets the same answer
// whoever it claims to be from, and then Verify returns ErrUnknownClient
// (which wraps ErrNotVerified).
//
// Verify does not judge the age of Request-Time: the caller compares
// Verified.RequestTime with its own clock and limit.
func (r *KeyRing) Verify(req *Request) (*Verified, error) {
	switch {
	case req.Method == "":
		return nil, fmt.Errorf("%w: no HTTP method", ErrMalformed)
	case req.URI == "":
		return nil, fmt.Errorf("%w: no request URI", ErrMalformed)
	case req.ClientID == "":
		return nil, &MissingHeaderError{Name: "Client-Id"}
	case req.RequestTime == "":
		return nil, &MissingHeaderError{Name: "Request-Time"}
	case req.Signature == "":
		return nil, &MissingHeaderError{Name: "Signature"}
	case strings.IndexByte(req.ClientID, '.') >= 0:
		return nil, fmt.Errorf("%w: %q contains a '.'", ErrBadClientID, clip(req.ClientID))
	}
	header, err := ParseSignatureHeader(req.Signature)
	if err != nil {
		return nil, err
	}
	// A 4096-bit signature fits: decoding allocates nothing for any key
	// Antom uses.
	var sigBuf [512]byte
	sig, err := appendDecodeSignature(sigBuf[:0], header.Signature)
	if err != nil {
		return nil, err
	}
	t, err := ParseRequestTime(req.RequestTime)
	if err != nil {
		return nil, err
	}
	v := &Verified{RequestTime: t, KeyVersion: header.KeyVersion, Key: -1}
	v.Body = req.Body
	if err := scanBody(req.Body, &v.NotifyType); err != nil {
		return nil, err
	}
	if r == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownClient, clip(req.ClientID))
	}
	digest := req.digest()
	if v.Key = r.find(digest[:], sig); v.Key < 0 {
		return nil, fmt.Errorf("%w with any of %d key(s)", ErrSignatureMismatch, len(r.keys))
	}
	return v, nil
}

// digest is the SHA-256 of the signed content, hashed piece by piece so
// that the content (as long as the body) is never built.
func (r *Request) digest() [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte(r.Method))
	h.Write([]byte{' '})
	h.Write([]byte(r.URI))
	h.Write([]byte{'\n'})
	h.Write([]byte(r.ClientID))
	h.Write([]byte{'.'})
	h.Write([]byte(r.RequestTime))
	h.Write([]byte{'.'})
	h.Write(r.Body)
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}
