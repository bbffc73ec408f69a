package antom

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestVectorVerifies(t *testing.T) {
	v := loadVector(t, genuine)
	req := v.request()

	content := req.AppendSignedContent(nil)
	if len(content) != v.ContentLength {
		t.Errorf("signed content is %d bytes, the vector says %d", len(content), v.ContentLength)
	}
	if sum := sha256.Sum256(content); hex.EncodeToString(sum[:]) != v.ContentSHA256 {
		t.Errorf("signed content SHA-256 %x, the vector says %s", sum, v.ContentSHA256)
	}

	got, err := vectorRing(t, v).Verify(req)
	if err != nil {
		t.Fatalf("the real vector does not verify: %v", err)
	}
	if got.Key != 0 || got.KeyVersion != 1 {
		t.Errorf("Key %d, KeyVersion %d; want 0, 1", got.Key, got.KeyVersion)
	}
	if want := time.Date(2025, 5, 19, 1, 52, 32, 0, time.UTC); !got.RequestTime.Equal(want) {
		t.Errorf("RequestTime %v, want %v", got.RequestTime, want)
	}
	if got.NotifyType != "" { // a response: no notifyType
		t.Errorf("NotifyType %q, want none", got.NotifyType)
	}
	if !bytes.Equal(got.Body, req.Body) {
		t.Error("Body is not the body received")
	}
}

func TestTamperedVectorDoesNotVerify(t *testing.T) {
	v := loadVector(t, tampered)
	if v.Verified {
		t.Fatal("the tampered vector claims to verify")
	}
	_, err := vectorRing(t, v).Verify(v.request())
	if !errors.Is(err, ErrSignatureMismatch) || !errors.Is(err, ErrNotVerified) || errors.Is(err, ErrMalformed) {
		t.Fatalf("tampered vector: %v, want ErrSignatureMismatch (ErrNotVerified only)", err)
	}
}

func TestPrettyPrintedBodyDoesNotVerify(t *testing.T) {
	v := loadVector(t, genuine)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, []byte(v.Body), "", "  "); err != nil {
		t.Fatal(err)
	}
	req := v.request()
	req.Body = pretty.Bytes()
	if _, err := vectorRing(t, v).Verify(req); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("pretty-printed body: %v, want ErrSignatureMismatch", err)
	}
}

// TestSignatureSpellings: the same signature bytes spelt with raw or
// percent-encoded '+', '/' and '=' verify; a '+' turned into a space is a
// malformed signature, not a wrong one.
func TestSignatureSpellings(t *testing.T) {
	v := loadVector(t, genuine)
	ring := vectorRing(t, v)
	if !strings.Contains(v.Signature, "%2B") {
		t.Fatal("the vector's signature has no %2B: the test would prove nothing")
	}
	raw := strings.NewReplacer("%2B", "+", "%2F", "/", "%3D", "=").Replace(v.Signature)
	for _, tc := range []struct {
		name, header string
		want         error
	}{
		{"as sent (%2B)", v.Signature, nil},
		{"raw + / =", raw, nil},
		{"raw + only", strings.ReplaceAll(v.Signature, "%2B", "+"), nil},
		{"lower-case hex", strings.NewReplacer("%2B", "%2b", "%2F", "%2f", "%3D", "%3d").Replace(v.Signature), nil},
		{"+ as space", strings.ReplaceAll(raw, "+", " "), ErrBadSignatureEncoding},
		{"%2B as %20", strings.ReplaceAll(v.Signature, "%2B", "%20"), ErrBadSignatureEncoding},
		{"double encoded", strings.ReplaceAll(v.Signature, "%", "%25"), ErrBadSignatureEncoding},
		{"no padding", strings.TrimSuffix(v.Signature, "%3D%3D"), ErrBadSignatureEncoding},
		{"line break", strings.Replace(v.Signature, "%2F", "%0A%2F", 1), ErrBadSignatureEncoding},
		{"bad escape", v.Signature + "%3", ErrBadSignatureEncoding},
		{"one byte short", strings.Replace(v.Signature, "signature=f", "signature=", 1), ErrBadSignatureEncoding},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := v.request()
			req.Signature = tc.header
			_, err := ring.Verify(req)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("%s: %v, want %v", tc.header, err, tc.want)
			}
			if tc.want != nil && !errors.Is(err, ErrMalformed) {
				t.Fatalf("%v is not ErrMalformed", err)
			}
		})
	}
}

func TestSignatureHeaderForms(t *testing.T) {
	v := loadVector(t, genuine)
	ring := vectorRing(t, v)
	sig := strings.TrimPrefix(v.Signature, "algorithm=RSA256,keyVersion=1,signature=")
	for _, tc := range []struct {
		name, header string
		want         error
		keyVersion   int
	}{
		{"SDK form", "algorithm=RSA256,keyVersion=1,signature=" + sig, nil, 1},
		{"spaces after commas (docs)", "algorithm=RSA256, keyVersion=1, signature=" + sig, nil, 1},
		{"tabs and spaces", "algorithm=RSA256 ,\tkeyVersion=1 ,  signature=" + sig, nil, 1},
		{"signature first", "signature=" + sig + ",algorithm=RSA256,keyVersion=1", nil, 1},
		{"keyVersion last", "algorithm=RSA256,signature=" + sig + ",keyVersion=1", nil, 1},
		{"keyVersion 2", "algorithm=RSA256,keyVersion=2,signature=" + sig, nil, 2},
		{"keyVersion absent", "algorithm=RSA256,signature=" + sig, nil, 1},
		{"names in other case", "Algorithm=RSA256,KEYVERSION=3,Signature=" + sig, nil, 3},
		{"unknown field ignored", "algorithm=RSA256,keyVersion=1,foo=bar,signature=" + sig, nil, 1},
		{"unknown algorithm", "algorithm=RSA512,keyVersion=1,signature=" + sig, ErrUnsupportedAlgorithm, 0},
		{"algorithm lower case", "algorithm=rsa256,keyVersion=1,signature=" + sig, ErrUnsupportedAlgorithm, 0},
		{"algorithm empty", "algorithm=,keyVersion=1,signature=" + sig, ErrUnsupportedAlgorithm, 0},
		{"no algorithm", "keyVersion=1,signature=" + sig, ErrMalformedSignatureHeader, 0},
		{"no signature", "algorithm=RSA256,keyVersion=1", ErrMalformedSignatureHeader, 0},
		{"empty signature", "algorithm=RSA256,keyVersion=1,signature=", ErrMalformedSignatureHeader, 0},
		{"signature twice", "algorithm=RSA256,signature=" + sig + ",signature=" + sig, ErrMalformedSignatureHeader, 0},
		{"keyVersion not a number", "algorithm=RSA256,keyVersion=v1,signature=" + sig, ErrMalformedSignatureHeader, 0},
		{"keyVersion negative", "algorithm=RSA256,keyVersion=-1,signature=" + sig, ErrMalformedSignatureHeader, 0},
		{"space before =", "algorithm=RSA256,keyVersion =1,signature=" + sig, ErrMalformedSignatureHeader, 0},
		{"trailing comma", "algorithm=RSA256,keyVersion=1,signature=" + sig + ",", ErrMalformedSignatureHeader, 0},
		{"empty field", "algorithm=RSA256,,signature=" + sig, ErrMalformedSignatureHeader, 0},
		{"bare signature", sig, ErrMalformedSignatureHeader, 0},
		{"blank", "  ", ErrMissingHeader, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := v.request()
			req.Signature = tc.header
			got, err := ring.Verify(req)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("%s: %v", tc.header, err)
				}
				if got.KeyVersion != tc.keyVersion {
					t.Fatalf("KeyVersion %d, want %d", got.KeyVersion, tc.keyVersion)
				}
				return
			}
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("%s: %v, want %v", tc.header, err, tc.want)
			}
		})
	}
}

func TestParseSignatureHeaderRoundTrip(t *testing.T) {
	h, err := ParseSignatureHeader("signature=a%2Bb=, keyVersion=7 , algorithm=RSA256")
	if err != nil {
		t.Fatal(err)
	}
	want := SignatureHeader{Algorithm: "RSA256", KeyVersion: 7, Signature: "a%2Bb="}
	if h != want {
		t.Fatalf("got %+v, want %+v", h, want)
	}
	if s := h.String(); s != "algorithm=RSA256,keyVersion=7,signature=a%2Bb=" {
		t.Fatalf("String: %s", s)
	}
}

func TestSignedFields(t *testing.T) {
	ring := testRing(t, 0)
	base := testRequest(t)
	if _, err := ring.Verify(base); err != nil {
		t.Fatalf("a signed request does not verify: %v", err)
	}
	withQuery := signed(t, 0, "/antom/notify?shop=1&x=%2F", "SANDBOX_5X00000000000000", "1685599933871", testBody)
	if _, err := ring.Verify(withQuery); err != nil {
		t.Fatalf("URI with a query: %v", err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Request)
	}{
		{"wrong client id", func(r *Request) { r.ClientID = "SANDBOX_5X00000000000001" }},
		{"different URI", func(r *Request) { r.URI = "/antom/notify2" }},
		{"query added", func(r *Request) { r.URI += "?a=1" }},
		{"rewritten URI", func(r *Request) { r.URI = "/notify" }},
		{"other time, same instant", func(r *Request) { r.RequestTime = "2025-05-19T01:52:32.000Z" }},
		{"other method", func(r *Request) { r.Method = "PUT" }},
		{"body with a trailing newline", func(r *Request) { r.Body = append(r.Body, '\n') }},
		{"amount changed", func(r *Request) {
			r.Body = bytes.Replace(r.Body, []byte(`"100"`), []byte(`"900"`), 1)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := *base
			req.Body = bytes.Clone(base.Body)
			tc.mutate(&req)
			if _, err := ring.Verify(&req); !errors.Is(err, ErrSignatureMismatch) {
				t.Fatalf("%v, want ErrSignatureMismatch", err)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	second := signed(t, 1, "/n", "C1", "1685599933871", testBody)
	got, err := testRing(t, 0, 1).Verify(second)
	if err != nil {
		t.Fatalf("the second key does not verify: %v", err)
	}
	if got.Key != 1 {
		t.Fatalf("Key %d, want 1", got.Key)
	}
	got, err = testRing(t, 1, 0).Verify(second)
	if err != nil || got.Key != 0 {
		t.Fatalf("first of two: %v, Key %d", err, got.Key)
	}
	if _, err := testRing(t, 0).Verify(second); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("a ring without the signing key: %v", err)
	}
}

func TestMissingAndMalformedRequest(t *testing.T) {
	ring := testRing(t, 0)
	for _, tc := range []struct {
		name   string
		mutate func(*Request)
		want   error
		header string
	}{
		{"no Client-Id", func(r *Request) { r.ClientID = "" }, ErrMissingHeader, "Client-Id"},
		{"no Request-Time", func(r *Request) { r.RequestTime = "" }, ErrMissingHeader, "Request-Time"},
		{"no Signature", func(r *Request) { r.Signature = "" }, ErrMissingHeader, "Signature"},
		{"no method", func(r *Request) { r.Method = "" }, ErrMalformed, ""},
		{"no URI", func(r *Request) { r.URI = "" }, ErrMalformed, ""},
		{"Client-Id with a dot", func(r *Request) { r.ClientID = "A.B" }, ErrBadClientID, ""},
		{"bad Request-Time", func(r *Request) { r.RequestTime = "yesterday" }, ErrBadRequestTime, ""},
		{"empty body", func(r *Request) { r.Body = nil }, ErrMalformedBody, ""},
		{"duplicate key", func(r *Request) { r.Body = []byte(`{"a":1,"a":1}`) }, ErrDuplicateKey, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := *testRequest(t)
			tc.mutate(&req)
			_, err := ring.Verify(&req)
			if !errors.Is(err, tc.want) || !errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotVerified) {
				t.Fatalf("%v, want %v (ErrMalformed only)", err, tc.want)
			}
			var missing *MissingHeaderError
			if tc.header != "" && (!errors.As(err, &missing) || missing.Name != tc.header) {
				t.Fatalf("%v does not name %s", err, tc.header)
			}
		})
	}
}

// TestUnknownClient: the nil ring of an unknown client still makes the
// structural checks, then refuses as not verified.
func TestUnknownClient(t *testing.T) {
	var unknown *KeyRing
	if _, err := unknown.Verify(testRequest(t)); !errors.Is(err, ErrUnknownClient) || !errors.Is(err, ErrNotVerified) {
		t.Fatalf("nil ring: %v, want ErrUnknownClient", err)
	}
	req := testRequest(t)
	req.RequestTime = "now"
	if _, err := unknown.Verify(req); !errors.Is(err, ErrBadRequestTime) {
		t.Fatalf("nil ring, malformed request: %v, want ErrBadRequestTime", err)
	}
	if unknown.Len() != 0 {
		t.Fatal("nil ring has keys")
	}
}

func TestErrorClasses(t *testing.T) {
	malformed := []error{ErrMissingHeader, ErrMalformedSignatureHeader, ErrUnsupportedAlgorithm,
		ErrBadSignatureEncoding, ErrBadClientID, ErrBadRequestTime, ErrMalformedBody, ErrDuplicateKey,
		&MissingHeaderError{Name: "Client-Id"}}
	for _, err := range malformed {
		if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotVerified) {
			t.Errorf("%v: not ErrMalformed only", err)
		}
	}
	for _, err := range []error{ErrSignatureMismatch, ErrUnknownClient} {
		if !errors.Is(err, ErrNotVerified) || errors.Is(err, ErrMalformed) {
			t.Errorf("%v: not ErrNotVerified only", err)
		}
	}
	if !errors.Is(ErrDuplicateKey, ErrMalformedBody) {
		t.Error("ErrDuplicateKey is not ErrMalformedBody")
	}
}

func TestSign(t *testing.T) {
	req := testRequest(t)
	h, err := ParseSignatureHeader(req.Signature)
	if err != nil {
		t.Fatal(err)
	}
	if h.Algorithm != "RSA256" || h.KeyVersion != 1 || !strings.HasPrefix(req.Signature, "algorithm=RSA256,keyVersion=1,signature=") {
		t.Fatalf("header %s", req.Signature)
	}
	if strings.ContainsAny(h.Signature, "+/= ") {
		t.Fatalf("signature not percent-encoded: %s", h.Signature)
	}
	again, _ := Sign(testKey(t, 0), req.Method, req.URI, req.ClientID, req.RequestTime, req.Body)
	if again != req.Signature {
		t.Fatal("signing is not deterministic")
	}
	if _, err := Sign(nil, "POST", "/", "c", "1", nil); err == nil {
		t.Fatal("Sign with no key")
	}
}

func TestDecodeSignature(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want string // hex; "" for an error
	}{
		{"AAEC", "000102"},
		{"AAE%3D", "0001"},
		{"AAE=", "0001"},
		{"%2B%2F8%3D", "fbff"},
		{"+/8=", "fbff"},
		{"AAF=", ""},  // nonzero padding bits
		{"AAE", ""},   // padding missing
		{"AAE==", ""}, // too much padding
		{"AA EC", ""},
		{"AA%0AEC", ""},
		{"AAEC\n", ""},
		{"AA%2", ""},
		{"AA%zzEC", ""},
		{"AA-_", ""}, // URL alphabet
		{"", ""},
	} {
		got, err := DecodeSignature(tc.in)
		if tc.want == "" {
			if err == nil || !errors.Is(err, ErrBadSignatureEncoding) {
				t.Errorf("%q: %x, %v; want ErrBadSignatureEncoding", tc.in, got, err)
			}
			continue
		}
		if err != nil || hex.EncodeToString(got) != tc.want {
			t.Errorf("%q: %x, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	sig := []byte{0xfb, 0xff, 0xfe, 0x00, 0x3e}
	back, err := DecodeSignature(EncodeSignature(sig))
	if err != nil || !bytes.Equal(back, sig) {
		t.Fatalf("EncodeSignature does not round-trip: %x, %v", back, err)
	}
}

// NewRequest reads each signed header once; a repeated one is refused
// before anything is verified, whichever copy was the signed one.
func TestNewRequestFromHeaders(t *testing.T) {
	signed := testRequest(t)
	header := http.Header{}
	header.Set("Client-Id", signed.ClientID)
	header.Set("Request-Time", signed.RequestTime)
	header.Set("Signature", signed.Signature)
	req, err := NewRequest(signed.Method, signed.URI, header, signed.Body)
	if err != nil || req.Method != signed.Method || req.URI != signed.URI || req.ClientID != signed.ClientID ||
		req.RequestTime != signed.RequestTime || req.Signature != signed.Signature || !bytes.Equal(req.Body, signed.Body) {
		t.Fatalf("NewRequest: %+v, %v; want %+v", req, err, signed)
	}
	if _, err := testRing(t, 0).Verify(req); err != nil {
		t.Fatalf("the request NewRequest built does not verify: %v", err)
	}
	for _, name := range []string{"Client-Id", "Request-Time", "Signature"} {
		twice := header.Clone()
		twice.Add(name, header.Get(name)) // even the same value twice
		_, err := NewRequest(signed.Method, signed.URI, twice, signed.Body)
		if !errors.Is(err, ErrRepeatedHeader) || !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), name+", 2 times") {
			t.Errorf("%s twice: %v", name, err)
		}
		absent := header.Clone()
		absent.Del(name)
		req, err := NewRequest(signed.Method, signed.URI, absent, signed.Body)
		if err != nil {
			t.Fatalf("%s absent: %v", name, err)
		}
		if _, err := testRing(t, 0).Verify(req); !errors.Is(err, ErrMissingHeader) {
			t.Errorf("%s absent: Verify says %v", name, err)
		}
	}
}
