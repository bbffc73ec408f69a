package alipay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
)

// splitJSONBefore is splitJSON as it was before jsonClosesWithin: every
// value that starts a JSON document and is not one goes to the decoder.
// FuzzSplitJSONAgrees compares the two.
func (n *Notification) splitJSONBefore(rule Rule) string {
	for i, f := range n.text {
		if !rule.signs(f.Key) || !startsJSONDocument(f.Value) || isJSONDocument(f.Value) {
			continue
		}
		// The text from this value to the end of the signed string, with the
		// offsets at which each later value ends.
		var rest []byte
		var ends []int
		rest = append(rest, f.Value...)
		for j := i + 1; j < len(n.text); j++ {
			if !rule.signs(n.text[j].Key) {
				continue
			}
			rest = append(append(append(append(rest, '&'), n.text[j].Key...), '='), n.text[j].Value...)
			ends = append(ends, len(rest))
		}
		dec := json.NewDecoder(bytes.NewReader(rest))
		var doc json.RawMessage
		if dec.Decode(&doc) != nil {
			continue
		}
		end := int(dec.InputOffset())
		for k, e := range ends {
			if e == end {
				return fmt.Sprintf("%s: the JSON value of %s continues into the parameters after it, up to %s (a re-shaped notification)",
					ErrAmbiguous.reason, f.Key, n.nthSignedAfter(i, k, rule))
			}
		}
	}
	return ""
}

// FuzzSplitJSONAgrees: splitJSON, which skips the decoder for values whose
// brackets close within them, finds exactly the JSON values cut in pieces
// that the decoder finds, under both rules.
func FuzzSplitJSONAgrees(f *testing.F) {
	for _, body := range fuzzBodies(f) {
		f.Add([]byte(body))
	}
	for _, body := range []string{
		"a=%7B%22x%22%3A1&b=2%7D", "a=%5B1&b=2%5D&c=3", "a=%5B%22%5C%22%5D%22&b=%5D", "a=%7B%22k%22%3A%22%7D%22&b=1%7D",
		"a=%5B%7B%5D&b=%7D%5D", "a=%5B1%5D&b=%5D", "a=%5B1%5Dx&b=1", "a=%7B%7D%7D&b=1", "a=%5B%22%5C%5C%22&b=%5D",
		"a=%5B&sign_type=RSA2%5D", "sign_type=%5B1&z=%5D",
	} {
		f.Add([]byte(body))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		n, err := ParseNotification(body)
		if err != nil {
			return
		}
		for _, rule := range []Rule{RuleV1, RuleV2} {
			if got, want := n.splitJSON(rule), n.splitJSONBefore(rule); got != want {
				t.Fatalf("rule %s: splitJSON %q, with the decoder for every value %q", rule, got, want)
			}
		}
	})
}

// TestJSONClosesWithin pins the bracket count on strings and escapes.
func TestJSONClosesWithin(t *testing.T) {
	for s, want := range map[string]bool{
		`[]`: true, `{}`: true, `[1]x`: true, `[`: false, `[[]`: false, `["]"]`: true, `["]"`: false,
		`["\"]`: false, `["\\"]`: true, `["\"]"]`: true, `["\\"]"]`: true, `["\\\"]`: false, `{"a":"}"`: false, `[}`: true,
		`[{"amount":"0.10","fundChannel":"ALIPAYACCOUNT"}]`: true, `[{"amount":"0.10"`: false,
	} {
		if got := jsonClosesWithin(s); got != want {
			t.Errorf("jsonClosesWithin(%s) = %v, want %v", s, got, want)
		}
		if want && len(s) > 0 && json.Valid([]byte(s)) != isJSONDocument(s) {
			t.Errorf("isJSONDocument(%s)", s)
		}
	}
}
