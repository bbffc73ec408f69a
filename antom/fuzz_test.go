package antom

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParseSignatureHeader: the parser never panics, what it accepts is
// well formed, and a parsed header formatted by String parses to itself.
func FuzzParseSignatureHeader(f *testing.F) {
	for _, seed := range []string{
		loadVector(f, genuine).Signature,
		"algorithm=RSA256, keyVersion=1, signature=AAAA",
		"signature=a+b/c==,algorithm=RSA256",
		"algorithm=RSA256,keyVersion=99,signature=%2B%2F%3D,extra=1",
		"Algorithm=RSA256,KeyVersion=01,SIGNATURE=x",
		"algorithm=RSA256,,signature=x",
		"algorithm=RSA256,signature=x,signature=y",
		"algorithm=RSA512,signature=x",
		"=,=",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, value string) {
		h, err := ParseSignatureHeader(value)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("%q: error %v is not ErrMalformed", value, err)
			}
			return
		}
		if h.Algorithm != AlgorithmRSA256 || h.KeyVersion < 0 || h.Signature == "" || strings.Contains(h.Signature, ",") {
			t.Fatalf("%q: accepted %+v", value, h)
		}
		again, err := ParseSignatureHeader(h.String())
		if err != nil || again != h {
			t.Fatalf("%q: %+v formats as %q, which parses as %+v, %v", value, h, h.String(), again, err)
		}
		sig, err := DecodeSignature(h.Signature)
		if err != nil {
			if !errors.Is(err, ErrBadSignatureEncoding) {
				t.Fatalf("%q: DecodeSignature: %v", h.Signature, err)
			}
			return
		}
		if back, err := DecodeSignature(EncodeSignature(sig)); err != nil || !bytes.Equal(back, sig) {
			t.Fatalf("%q: EncodeSignature does not round-trip: %x, %v", h.Signature, back, err)
		}
	})
}

// FuzzVerify: a signed request with one byte changed in the body, the URI,
// the Client-Id, the Request-Time or the Signature header never verifies
// (unless the change leaves the signature's bytes as they were, such as
// "%2B" spelt "%2b"), and Verify never panics. The signed request is either
// one of fixed ones (the real vector among them) or one built from the
// fuzzer's fields and signed with a test key.
func FuzzVerify(f *testing.F) {
	vec := loadVector(f, genuine)
	vecRing := vectorRing(f, vec)
	ring := testRing(f, 1, 0) // the test requests are signed with key 0: the second tried
	fixed := []struct {
		req  *Request
		ring *KeyRing
	}{
		{vec.request(), vecRing},
		{testRequest(f), ring},
		{signed(f, 0, "/n?a=1&b=%2F", "C-1", "2019-04-04T12:08:56.253+05:30", `{"a":[{"b":1.50e3}],"s":"\u00e9\ud83d\ude00"}`), ring},
	}
	for i := range fixed {
		for field := range uint8(5) {
			f.Add(uint8(i), field, uint16(7), uint8(1), []byte(nil), "", "", "")
		}
	}
	f.Add(uint8(9), uint8(0), uint16(3), uint8(0x20), []byte(`{"notifyType":"X"}`), "/x", "C", "1685599933871")
	f.Add(uint8(9), uint8(4), uint16(60), uint8(0x20), []byte(`{"a":{}}`), "/x?y", "C", "2025-05-19T01:52:32Z")

	f.Fuzz(func(t *testing.T, which, field uint8, pos uint16, delta uint8, body []byte, uri, clientID, requestTime string) {
		var orig *Request
		var keys *KeyRing
		if int(which) < len(fixed) {
			orig, keys = fixed[which].req, fixed[which].ring
		} else {
			// The fuzzer's own request, when it is well formed (the nil ring
			// checks that without the cost of signing).
			req := &Request{Method: "POST", URI: uri, ClientID: clientID, RequestTime: requestTime, Signature: "algorithm=RSA256,signature=AAAA", Body: body}
			if _, err := (*KeyRing)(nil).Verify(req); !errors.Is(err, ErrUnknownClient) {
				return
			}
			orig, keys = signed(t, 0, uri, clientID, requestTime, string(body)), ring
			if _, err := keys.Verify(orig); err != nil {
				t.Fatalf("a well-formed signed request does not verify: %v", err)
			}
		}
		origHeader, err := ParseSignatureHeader(orig.Signature)
		if err != nil {
			t.Fatal(err)
		}
		origSig, err := DecodeSignature(origHeader.Signature)
		if err != nil {
			t.Fatal(err)
		}

		req := *orig
		if delta == 0 {
			delta = 1 // a change, always
		}
		mutate := func(s string) string {
			b := []byte(s)
			if len(b) > 0 {
				b[int(pos)%len(b)] ^= delta
			}
			return string(b)
		}
		switch field % 5 {
		case 0:
			req.Body = []byte(mutate(string(orig.Body)))
		case 1:
			req.URI = mutate(orig.URI)
		case 2:
			req.ClientID = mutate(orig.ClientID)
		case 3:
			req.RequestTime = mutate(orig.RequestTime)
		case 4:
			req.Signature = mutate(orig.Signature)
		}
		v, err := keys.Verify(&req)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrSignatureMismatch) {
				t.Fatalf("error %v is neither ErrMalformed nor ErrSignatureMismatch", err)
			}
			return
		}
		if field%5 != 4 {
			t.Fatalf("a request changed in field %d verifies: %+v", field%5, req)
		}
		h, _ := ParseSignatureHeader(req.Signature)
		if sig, _ := DecodeSignature(h.Signature); !bytes.Equal(sig, origSig) {
			t.Fatalf("Signature %q (another signature) verifies as key %d", req.Signature, v.Key)
		}
	})
}

// FuzzParseNotification compares the body rules with encoding/json: a body
// is accepted exactly when it is valid UTF-8, json.Valid, an object, and
// has no duplicate key as encoding/json decodes keys; the one difference
// allowed is a lone surrogate escape, which encoding/json turns into U+FFFD
// and this package refuses. The notifyType agrees.
func FuzzParseNotification(f *testing.F) {
	for _, seed := range []string{
		loadVector(f, genuine).Body,
		testBody,
		`{"a":1,"\u0061":2}`,
		`{"a":{"b":[{"c":1,"c":2}]}}`,
		`{"notifyType":"\u00e9\ud83d\ude00"}`,
		`{"notifyType":1}`,
		`{"a":"\ud800"}`,
		`{"\ud800":1,"\udc00":2}`,
		`{} `,
		`{}{}`,
		`[1]`,
		"{\"a\":\"\xff\"}",
		`{"a":-0.0e+0,"b":[true,false,null]}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		refOK, refType, refDup := referenceParse(body)
		if err != nil && !errors.Is(err, ErrMalformedBody) {
			t.Fatalf("%q: error %v is not ErrMalformedBody", body, err)
		}
		loneSurrogate := err != nil && strings.Contains(err.Error(), "lone surrogate")
		if loneSurrogate && !strings.Contains(strings.ToLower(string(body)), `\ud`) {
			t.Fatalf("%q: a lone surrogate without a surrogate escape", body)
		}
		switch {
		case err == nil && !refOK:
			t.Fatalf("%q: accepted; encoding/json refuses it (duplicate: %v)", body, refDup)
		case err != nil && refOK && !loneSurrogate:
			t.Fatalf("%q: refused (%v); encoding/json accepts it", body, err)
		// A duplicate in an object that closed before a later syntax error
		// is reported as a duplicate (both refuse): compare valid JSON only.
		case errors.Is(err, ErrDuplicateKey) && !refDup && utf8.Valid(body) && json.Valid(body):
			t.Fatalf("%q: %v; encoding/json sees no duplicate", body, err)
		case err == nil && n.NotifyType != refType:
			t.Fatalf("%q: notifyType %q, encoding/json reads %q", body, n.NotifyType, refType)
		case err == nil && !bytes.Equal(n.Body, body):
			t.Fatalf("%q: Body changed", body)
		}
	})
}

// referenceParse applies the body rules with encoding/json's Decoder.
func referenceParse(body []byte) (ok bool, notifyType string, dup bool) {
	if !utf8.Valid(body) || !json.Valid(body) {
		return false, "", false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return false, "", false
	}
	var walk func(depth int) error
	var value func(depth int) (json.Token, error)
	errDup := errors.New("duplicate")
	errType := errors.New("notifyType")
	walk = func(depth int) error { // after '{'
		seen := map[string]bool{}
		for dec.More() {
			tok, err := dec.Token()
			if err != nil {
				return err
			}
			key := tok.(string)
			if seen[key] {
				return errDup
			}
			seen[key] = true
			v, err := value(depth)
			if err != nil {
				return err
			}
			if depth == 1 && key == "notifyType" {
				s, isString := v.(string)
				if !isString {
					return errType
				}
				notifyType = s
			}
		}
		_, err := dec.Token() // '}'
		return err
	}
	value = func(depth int) (json.Token, error) {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok {
		case json.Delim('{'):
			return tok, walk(depth + 1)
		case json.Delim('['):
			for dec.More() {
				if _, err := value(depth + 1); err != nil {
					return nil, err
				}
			}
			_, err := dec.Token() // ']'
			return tok, err
		}
		return tok, nil
	}
	switch err := walk(1); {
	case errors.Is(err, errDup):
		return false, "", true
	case err != nil:
		return false, "", false
	}
	if _, err := dec.Token(); err != io.EOF {
		return false, "", false
	}
	return true, notifyType, false
}

// FuzzParseRequestTime: never panics, and an accepted Request-Time has none
// of the characters the unambiguity of the signed content relies on (see
// the package documentation): no '{', no white space, no '.' but before a
// digit.
func FuzzParseRequestTime(f *testing.F) {
	for _, seed := range []string{"1685599933871", "2019-04-04T12:08:56.253+05:30", "2025-05-19T01:52:32Z",
		"2025-05-19t01:52:32.1z", "2025-05-19T01:52:32,5Z", "999999999999999"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, err := ParseRequestTime(s)
		if err != nil {
			if !errors.Is(err, ErrBadRequestTime) {
				t.Fatalf("%q: %v", s, err)
			}
			return
		}
		if strings.ContainsAny(s, "{ \t\r\n") {
			t.Fatalf("%q accepted", s)
		}
		for i := 0; i < len(s); i++ {
			if s[i] == '.' && (i+1 == len(s) || !isDigit(s[i+1])) {
				t.Fatalf("%q accepted", s)
			}
		}
	})
}
