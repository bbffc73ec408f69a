package alipay

import (
	"errors"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/internal/testkit"
)

// verifyBody parses body and verifies it with ring.
func verifyBody(ring *KeyRing, body string) (*Notification, Match, error) {
	n, err := ParseNotification([]byte(body))
	if err != nil {
		return nil, Match{}, err
	}
	m, err := ring.Verify(n)
	return n, m, err
}

func TestVectors(t *testing.T) {
	for _, vec := range testkit.LoadVectors(t) {
		t.Run(vec.Name, func(t *testing.T) {
			ring, err := NewKeyRing(vec.Key.AlipayPublicKey)
			if err != nil {
				t.Fatal(err)
			}
			n, m, err := verifyBody(ring, vec.Body)
			if n == nil {
				t.Fatal(err)
			}
			if got := string(n.SignedString(Rule(vec.Expect.ContentRule))); got != vec.Expect.StringToSign {
				t.Fatalf("signed string\n got %s\nwant %s", got, vec.Expect.StringToSign)
			}
			if !vec.Expect.Verified {
				if !errors.Is(err, ErrNotVerified) || !errors.Is(err, ErrSignatureMismatch) {
					t.Fatalf("tampered vector: want ErrSignatureMismatch, got %v (match %+v)", err, m)
				}
				return
			}
			if err != nil {
				t.Fatalf("want verified, got %v", err)
			}
			if m.Rule != Rule(vec.Expect.ContentRule) || m.Key != "key #1" {
				t.Errorf("match %+v, want rule %s", m, vec.Expect.ContentRule)
			}
			if err := n.CheckNotification(); err != nil {
				t.Errorf("a real notification is not a notification: %v", err)
			}
		})
	}
}

func TestSignedStringRules(t *testing.T) {
	body := "b=2&a=1&sign=x&sign_type=RSA2&empty=&blank=+%09+&spaced=+x+&nbsp=%C2%A0&plus=%2B&space=+&A=upper"
	n, err := ParseNotification([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	wantV1 := "A=upper&a=1&b=2&nbsp=\u00a0&plus=+&spaced= x "
	if got := string(n.SignedString(RuleV1)); got != wantV1 {
		t.Errorf("v1\n got %q\nwant %q", got, wantV1)
	}
	wantV2 := "A=upper&a=1&b=2&nbsp=\u00a0&plus=+&sign_type=RSA2&spaced= x "
	if got := string(n.SignedString(RuleV2)); got != wantV2 {
		t.Errorf("v2\n got %q\nwant %q", got, wantV2)
	}
	params, err := ParseForm([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(SignedString(params, RuleV1)); got != wantV1 {
		t.Errorf("SignedString of ParseForm's params\n got %q\nwant %q", got, wantV1)
	}
	// Blank parameters do not exist for anything read from it.
	for _, key := range []string{"empty", "blank", "space", "sign"} {
		if n.Get(key) != "" {
			t.Errorf("Get(%q) = %q", key, n.Get(key))
		}
	}
	for key := range n.Params() {
		if key == "empty" || key == "blank" || key == "space" || key == "sign" {
			t.Errorf("Params yields %q", key)
		}
	}
}

// TestSM2VectorFromOpenSSL checks an SM2 signature made by OpenSSL, an
// implementation independent of the one the package uses.
func TestSM2VectorFromOpenSSL(t *testing.T) {
	vec := testkit.LoadVector(t, "sm2-openssl.json")
	ring, err := NewKeyRing(vec.Key.AlipayPublicKey)
	if err != nil {
		t.Fatal(err)
	}
	n, _, err := verifyBody(ring, vec.Body)
	if err != nil {
		t.Fatalf("OpenSSL's SM2 signature does not verify: %v", err)
	}
	if got := string(n.SignedString(RuleV1)); got != vec.Expect.StringToSign {
		t.Fatalf("signed string %q", got)
	}
	tampered := strings.Replace(vec.Body, "total_amount=8.88", "total_amount=9.88", 1)
	if _, _, err := verifyBody(ring, tampered); !errors.Is(err, ErrSignatureMismatch) {
		t.Fatalf("tampered SM2 notification: %v", err)
	}
}

func TestErrorsAreClassified(t *testing.T) {
	ring, err := NewKeyRing(testkit.PublicKeyLine(t, "alipay"))
	if err != nil {
		t.Fatal(err)
	}
	good := testkit.Signed(t, testkit.Key(t, "alipay"), testkit.TradeParams(testkit.AppID, testkit.Now()), false)
	sign := testkit.Get(good, "sign")
	tests := []struct {
		name     string
		body     string
		sentinel error
		kind     error
	}{
		{"empty", "", ErrEmptyBody, ErrMalformed},
		{"broken escape", "a=%zz", ErrEncoding, ErrMalformed},
		{"name with a dot", "a.b=1", ErrParameterName, ErrMalformed},
		{"key twice", "a=1&a=2", ErrDuplicateParameter, ErrMalformed},
		{"bad charset", "a=1&charset=latin1", ErrCharset, ErrMalformed},
		{"no sign", testkit.EncodeForm(testkit.Without(good, "sign")), ErrNoSign, ErrMalformed},
		{"unknown sign_type", testkit.EncodeForm(testkit.Set(good, "sign_type", "XYZ")), ErrSignType, ErrMalformed},
		{"sign with a line break", testkit.EncodeForm(testkit.Set(good, "sign", sign[:10]+"\n"+sign[10:])), ErrSignEncoding, ErrMalformed},
		{"a fold", testkit.EncodeForm(testkit.Fold(t, good, "notify_id", "notify_time")), ErrAmbiguous, ErrMalformed},
		{"tampered", testkit.EncodeForm(testkit.Set(good, "total_amount", "9.99")), ErrSignatureMismatch, ErrNotVerified},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := verifyBody(ring, tc.body)
			if !errors.Is(err, tc.sentinel) || !errors.Is(err, tc.kind) {
				t.Fatalf("error %v: want %v and %v", err, tc.sentinel, tc.kind)
			}
		})
	}
}

func TestCheckNotification(t *testing.T) {
	now := testkit.Now()
	tests := map[string]struct {
		params []testkit.KV
		want   string // "" when it is a notification
	}{
		"trade notification":   {testkit.TradeParams(testkit.AppID, now), ""},
		"app-gateway message":  {testkit.Set(testkit.Without(testkit.TradeParams(testkit.AppID, now), "notify_time"), "utc_timestamp", "1700000000000"), ""},
		"return_url":           {testkit.ReturnURLParams(now), "no notify_id"},
		"blank notify_id":      {testkit.Set(testkit.TradeParams(testkit.AppID, now), "notify_id", " "), "no notify_id"},
		"notify_id with space": {testkit.Set(testkit.TradeParams(testkit.AppID, now), "notify_id", "a b"), "is not a token"},
		"notify_id too long":   {testkit.Set(testkit.TradeParams(testkit.AppID, now), "notify_id", strings.Repeat("a", 129)), "is not a token"},
		"no time":              {testkit.Without(testkit.TradeParams(testkit.AppID, now), "notify_time"), "neither notify_time nor utc_timestamp"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			n, err := ParseNotification([]byte(testkit.EncodeForm(tc.params)))
			if err != nil {
				t.Fatal(err)
			}
			err = n.CheckNotification()
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (!errors.Is(err, ErrNotNotification) || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want ErrNotNotification with %q", err, tc.want)
			}
		})
	}
}
