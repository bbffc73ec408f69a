package alipaynotify

import (
	"bytes"
	"encoding/json"
)

// The two readings of an Antom body that the handler needs besides the
// antom package's checks: the compact form for the webhook, and the
// merchant's request IDs for logs. The body has passed antom's Verify,
// which accepts exactly one JSON object, valid UTF-8, without lone
// surrogates or duplicate keys; so both read it with a single pass that
// trusts the syntax, rather than encoding/json's scanner (a step function
// per byte, reflection for Unmarshal), and give what encoding/json gives
// on such a body. FuzzAntomJSON compares them with encoding/json.

// compactJSON appends src, a valid JSON text, to dst without the white
// space outside strings: what json.Compact writes for it.
func compactJSON(dst, src []byte) []byte {
	run := 0 // the start of the bytes not yet copied
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '"':
			i = stringEnd(src, i) - 1
		case ' ', '\t', '\n', '\r':
			dst = append(dst, src[run:i]...)
			run = i + 1
		}
	}
	return append(dst, src[run:]...)
}

// stringEnd returns the index just after the JSON string that starts at
// src[i] (a '"'), or len(src) when it does not end.
func stringEnd(src []byte, i int) int {
	for i++; i < len(src); i++ {
		switch src[i] {
		case '\\':
			i++ // the escaped byte; \uXXXX's digits hold no quote
		case '"':
			return i + 1
		}
	}
	return len(src)
}

// Keys of antomRequestIDs, matched as encoding/json matches a struct's
// field names: exactly or case-insensitively (bytes.EqualFold).
var (
	paymentRequestIDKey = []byte("paymentRequestId")
	refundRequestIDKey  = []byte("refundRequestId")
)

// antomRequestIDs returns the top-level paymentRequestId and
// refundRequestId string values of body, a JSON object that antom's Verify
// accepted, as json.Unmarshal into a struct with those two string fields
// would: keys are matched case-insensitively, a later match replaces an
// earlier one, and a value that is not a string (null, a number...) is
// left out.
func antomRequestIDs(body []byte) (payment, refund string) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return "", ""
	}
	for i++; ; {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != '"' { // '}' (an empty object) or the end
			return payment, refund
		}
		keyEnd := stringEnd(body, i)
		key := body[i:keyEnd]
		i = skipSpace(body, keyEnd)
		i = skipSpace(body, i+1) // past ':'
		valueEnd := valueEnd(body, i)
		if i < len(body) && body[i] == '"' {
			switch {
			case keyMatches(key, paymentRequestIDKey):
				payment = jsonStringValue(body[i:valueEnd])
			case keyMatches(key, refundRequestIDKey):
				refund = jsonStringValue(body[i:valueEnd])
			}
		}
		i = skipSpace(body, valueEnd)
		if i >= len(body) || body[i] != ',' {
			return payment, refund
		}
		i++
	}
}

// keyMatches reports whether the JSON string token key names the field
// name as encoding/json would match it.
func keyMatches(key, name []byte) bool {
	raw := key[1 : len(key)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return bytes.EqualFold(raw, name)
	}
	return bytes.EqualFold([]byte(jsonStringValue(key)), name)
}

// jsonStringValue returns the value of a valid JSON string token.
func jsonStringValue(token []byte) string {
	raw := token[1 : len(token)-1]
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw)
	}
	var s string
	_ = json.Unmarshal(token, &s) // rare: an escape
	return s
}

// valueEnd returns the index just after the JSON value that starts at
// src[i], for valid JSON.
func valueEnd(src []byte, i int) int {
	if i >= len(src) {
		return i
	}
	switch src[i] {
	case '"':
		return stringEnd(src, i)
	case '{', '[':
		depth := 0
		for ; i < len(src); i++ {
			switch src[i] {
			case '"':
				i = stringEnd(src, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return i
	default: // a number, true, false or null
		for ; i < len(src); i++ {
			switch src[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
		}
		return i
	}
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON white space.
func skipSpace(src []byte, i int) int {
	for i < len(src) && (src[i] == ' ' || src[i] == '\t' || src[i] == '\n' || src[i] == '\r') {
		i++
	}
	return i
}
