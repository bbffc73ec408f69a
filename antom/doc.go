// Package antom verifies the notifications of Antom, Alipay's cross-border
// acquiring (the /ams/api/v1 API family: notifyPayment, notifyRefund,
// notifyCapture, notifyDispute, ...).
//
// Unlike domestic Alipay, which signs a form body, Antom signs a JSON POST in
// three headers:
//
//	Client-Id:    SANDBOX_5YEV2N2ZV8LC00920
//	Request-Time: 2025-05-19T01:52:32Z          (or epoch milliseconds)
//	Signature:    algorithm=RSA256,keyVersion=1,signature=<percent-encoded base64>
//
// The signature is SHA256withRSA (PKCS #1 v1.5) over
//
//	POST <request URI>\n<Client-Id>.<Request-Time>.<body>
//
// built from the values exactly as received. The package is the protocol
// only: it imports nothing but the standard library, so any Go program (an
// HTTP handler, a command-line tool, a test) can use it.
//
// # Use
//
// Load the client's Antom public keys once, in rotation order, then verify
// each request with the values it carried:
//
//	key, err := antom.ParsePublicKey(keyTextFromDashboard)
//	ring, err := antom.NewKeyRing(key)
//	...
//	req, err := antom.NewRequest(r.Method, r.RequestURI, r.Header, body) // the URI as received, before any rewrite
//	...
//	v, err := ring.Verify(req)
//
// Verify makes every structural check first, then the signature check, so
// a caller can map its errors to HTTP statuses with two tests:
// errors.Is(err, ErrMalformed) is a request that cannot be an Antom
// notification as sent (400), errors.Is(err, ErrNotVerified) one that is
// well formed but not signed by a configured key (403). The specific
// sentinel errors (ErrDuplicateKey, ErrSignatureMismatch, ...) each wrap one
// of the two.
//
// # What a verified request guarantees
//
// The signature covers the body byte for byte, but the package still
// refuses bodies that different JSON parsers could read differently: a
// body must be exactly one JSON object, in valid UTF-8, with no duplicate
// key at any depth and no lone surrogate escape. Whatever reads the
// forwarded body then reads what this package read.
//
// The signed content joins Client-Id, Request-Time and the body with '.',
// which is unambiguous only because a Client-Id has no '.', a Request-Time
// (epoch milliseconds or RFC 3339) has no '{' nor white space, and a body
// starts with '{' (after optional white space): Verify enforces all three,
// so one signed content has exactly one reading.
package antom
