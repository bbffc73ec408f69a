package capture

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// parseLogged reads parameters that a framework logged, already
// percent-decoded: a JSON object, a Rails hash, PHP print_r or var_export.
// A log line may have a prefix ("... Parameters: {...}"). name says what
// the input was.
func parseLogged(text, format string) (params map[string]string, name string, err error) {
	switch format {
	case JSON:
		if !strings.Contains(text, "{") {
			return nil, "", errors.New("no JSON object in the capture")
		}
		params, err := JSONParams(braced(text))
		return params, "JSON object", err
	case Rails:
		if !strings.Contains(text, "{") {
			return nil, "", errors.New(`no {"key"=>"value", ...} hash in the capture`)
		}
		params, err := parseRubyHash(braced(text))
		return params, "Rails log line", err
	case PrintR:
		params, err := parsePrintR(text)
		return params, "PHP print_r", err
	default:
		params, err := parseVarExport(text)
		return params, "PHP var_export", err
	}
}

// braced is text from its first '{' to its last '}', leaving out a log
// line's prefix ("Parameters: ") and suffix.
func braced(text string) string {
	start, end := strings.Index(text, "{"), strings.LastIndex(text, "}")
	if start < 0 || end < start {
		return text
	}
	return text[start : end+1]
}

// JSONParams reads a JSON object of strings, as Alipay sends every
// parameter; a null value is absent, any other non-string is an error that
// names it.
func JSONParams(text string) (map[string]string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	params := make(map[string]string, len(obj))
	for k, v := range obj {
		switch v := v.(type) {
		case string:
			params[k] = v
		case nil:
			// absent
		default:
			return nil, fmt.Errorf("JSON value of %q is %s, not a string: Alipay sends every parameter as a string", k, jsonKind(v))
		}
	}
	return params, nil
}

func jsonKind(v any) string {
	switch v := v.(type) {
	case json.Number:
		return "the number " + v.String()
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// rebuildBody encodes logged parameters into the body Alipay would have
// sent: the values in the bytes of the declared charset, percent-encoded.
func rebuildBody(params map[string]string, name string) (*Capture, error) {
	if len(params) == 0 {
		return nil, errors.New("the capture holds no parameters")
	}
	c := &Capture{Format: name + " (values already decoded; the body is rebuilt from them)", Decoded: true}
	if params["sign"] == "[FILTERED]" {
		return nil, errors.New(`sign is "[FILTERED]" in this log (e.g. Rails filter_parameters): the signature was not logged, so it cannot be checked`)
	}
	gbk := alipay.IsGBK(params["charset"])
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	enc := simplifiedchinese.GBK.NewEncoder()
	var b strings.Builder
	for i, k := range keys {
		value := params[k]
		if strings.ContainsRune(value, utf8.RuneError) {
			c.Notes = append(c.Notes, fmt.Sprintf("%s holds U+FFFD (�): the log already shows a charset mix-up, and the bytes Alipay signed are lost", k))
		}
		if gbk {
			if converted, err := enc.String(value); err == nil {
				value = converted
			} else {
				c.Notes = append(c.Notes, fmt.Sprintf("%s cannot be written in GBK: kept as UTF-8", k))
			}
		}
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(value))
	}
	c.Body = []byte(b.String())
	return c, nil
}
