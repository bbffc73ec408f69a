package alipay

import "slices"

// Rule is which parameters Alipay's signed string covers. Ordinary
// notifications, refunds and return_url redirects leave sign_type out (V1);
// messages pushed to an app gateway keep it (V2). Like Alipay's Node SDK,
// verification tries V1 first, then V2.
type Rule string

// The two rules.
const (
	RuleV1 Rule = "v1"
	RuleV2 Rule = "v2"
)

// SignedString returns the string Alipay signed under rule: every
// parameter but sign (and sign_type under V1) as key=value, joined with
// '&' in key byte order, unescaped, in the body's own charset.
func (n *Notification) SignedString(rule Rule) []byte {
	return n.raw.appendSignedString(nil, rule)
}

// SignedString builds the signed string of params, which must be sorted by
// key (as ParseForm returns them), for tools that try repaired copies of a
// notification: blank values, sign, and sign_type under V1 are left out.
func SignedString(params []Param, rule Rule) []byte {
	kept := make(form, 0, len(params))
	for _, p := range params {
		if !IsBlank(p.Value) {
			kept = append(kept, p)
		}
	}
	return kept.appendSignedString(nil, rule)
}

// appendSignedString appends the signed string of f (sorted, no blank
// values) to content, so that the verifier can build it in a buffer on its
// stack.
func (f form) appendSignedString(content []byte, rule Rule) []byte {
	size := 0 // an upper bound, cheaper than asking signs twice
	for _, p := range f {
		size += len(p.Key) + 1 + len(p.Value) + 1
	}
	content = slices.Grow(content[:0], size)
	for _, p := range f {
		if !rule.signs(p.Key) {
			continue
		}
		if len(content) > 0 {
			content = append(content, '&')
		}
		content = append(content, p.Key...)
		content = append(content, '=')
		content = append(content, p.Value...)
	}
	return content
}

// signs reports whether the signed string covers the parameter key under
// the rule (for a value that is not blank).
func (rule Rule) signs(key string) bool {
	return key != "sign" && (rule == RuleV2 || key != "sign_type")
}
