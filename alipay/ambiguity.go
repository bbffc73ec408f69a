package alipay

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// Alipay's signed string is k=v&k=v... with no escaping, so one string has
// several readings: a captured notification can be re-posted with a
// neighbouring parameter folded into a value (notify_id=<id>&notify_time=...
// as the value of notify_id) and still verify, as a "new" notification with
// no notify_time. The signature cannot tell the readings apart; these checks
// refuse every reading but the one Alipay meant (DESIGN.md §7).

// foldedParameter returns why the signed string that verified under rule
// could be read as other parameters, or "" when it has one reading.
//
// A value of K is ambiguous when it holds "&N=" with a parameter-like N
// that sorts after K and before the parameter that follows K in the signed
// string (or after K when K is last): exactly what folding N into K leaves,
// because the signed string is sorted (DESIGN.md §7). Two more shapes let
// one string be read twice, which the fuzz target FuzzOtherReadings found:
// N equal to the parameter after K (a=x&b=y&b=z reads as a="x&b=y", b=z or
// as a=x, b="y&b=z"), and N sorting before K but after the first signed
// parameter (a=1&c=2&b=3 reads as c="2&b=3" or as a="1&c=2", b=3). So N is
// refused when it sorts after the first signed parameter and no later than
// the one after K. Honest values pass: "subject=A&B=C" (B sorts before every
// lower-case name), "body=x&zz=1" when total_amount follows body. A value
// that is one whole JSON document cannot host a fold (the folded text would
// follow its closing bracket) and is not examined; but a value that only
// starts one, and whose document ends exactly where a later parameter ends,
// is a JSON value cut in pieces, and is refused too.
func (n *Notification) foldedParameter(rule Rule) string {
	if n.noAmpersand { // no value holds '&', so none can hold "&N="
		return n.splitJSON(rule)
	}
	first, last := "", -1 // the first signed key; the signed field before i
	for i := range n.raw {
		if !rule.signs(n.raw[i].Key) {
			continue
		}
		if last >= 0 {
			if reason := n.foldInto(last, first, n.raw[i].Key); reason != "" {
				return reason
			}
		} else {
			first = n.raw[i].Key
		}
		last = i
	}
	if last >= 0 {
		if reason := n.foldInto(last, first, ""); reason != "" {
			return reason
		}
	}
	return n.splitJSON(rule)
}

// foldInto checks field k's value for "&N=" with first < N <= next (next ""
// when k is the last signed parameter: no upper bound).
func (n *Notification) foldInto(k int, first, next string) string {
	key, value := n.raw[k].Key, n.raw[k].Value
	for rest := value; ; {
		amp := strings.IndexByte(rest, '&')
		if amp < 0 {
			return ""
		}
		rest = rest[amp+1:]
		name := rest[:nameLength(rest)]
		if name == "" || len(name) == len(rest) || rest[len(name)] != '=' {
			continue
		}
		if name > first && (next == "" || name <= next) {
			if isJSONDocument(n.text[k].Value) {
				return ""
			}
			return fmt.Sprintf("%s: %s holds %q, which reads as a parameter %s of its own (a re-shaped notification)",
				ErrAmbiguous.reason, key, Truncate("&"+name+"="), Truncate(name))
		}
	}
}

// splitJSON finds a JSON value cut in pieces: a signed value that starts a
// JSON object or array but is not one, while the signed string from that
// value on holds a whole document that ends exactly where a later
// parameter's value ends. That reading, one JSON value, is the one Alipay
// signed; the pieces are a re-shaped notification.
//
// A value whose brackets close within it (jsonClosesWithin) is skipped
// without a decoder: the first document of the text from it on ends no
// later than it does, before any later value ends, or the text is not
// JSON. A whole document closes at its end, so it is skipped too.
func (n *Notification) splitJSON(rule Rule) string {
	for i, f := range n.text {
		if !rule.signs(f.Key) || !startsJSONDocument(f.Value) || jsonClosesWithin(f.Value) {
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

// nthSignedAfter returns the key of the k-th (from 0) signed field after i.
func (n *Notification) nthSignedAfter(i, k int, rule Rule) string {
	for j := i + 1; j < len(n.raw); j++ {
		if !rule.signs(n.raw[j].Key) {
			continue
		}
		if k == 0 {
			return n.raw[j].Key
		}
		k--
	}
	return ""
}

// nameLength returns how many leading bytes of s are parameter-name bytes.
func nameLength(s string) int {
	for i := 0; i < len(s); i++ {
		if !isNameByte(s[i]) {
			return i
		}
	}
	return len(s)
}

// startsJSONDocument reports whether s begins like a JSON object or array,
// the only JSON that Alipay puts in a parameter (biz_content,
// fund_bill_list, voucher_detail_list).
func startsJSONDocument(s string) bool {
	return len(s) > 0 && (s[0] == '{' || s[0] == '[')
}

// jsonClosesWithin reports whether the object or array that s starts
// (startsJSONDocument) closes within s: whether, counting brackets outside
// JSON strings (which end at a '"' not escaped by a backslash), the depth
// returns to zero. On text that is JSON up to that point the count is
// exactly the structure, so a document that starts s ends there; on other
// text a JSON decoder fails before that point. It is a cheap test, one
// pass over the bytes, that spares splitJSON a decoder for every
// well-formed JSON value (fund_bill_list is in every trade notification).
func jsonClosesWithin(s string) bool {
	depth, inString := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if inString {
			switch c {
			case '\\':
				i++ // the escaped byte: \" does not end the string
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			depth--
			if depth == 0 {
				return true
			}
		}
	}
	return false
}

// isJSONDocument reports whether s is exactly one JSON object or array.
func isJSONDocument(s string) bool {
	return startsJSONDocument(s) && json.Valid([]byte(s))
}
