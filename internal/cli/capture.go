package alipaynotify

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// A capture is a notification as a merchant finds it while debugging: the
// raw body, a whole HTTP request, a URL, or the parameters as a framework
// logged them (Rails "Parameters: {"k"=>"v", ...}", a JSON object, PHP's
// print_r or var_export). caddy alipay-notify verify turns each into the
// form body that Alipay would have posted, and checks it as the handler does.

// Capture formats, as --format names them.
const (
	formatAuto      = "auto"
	formatBody      = "body"
	formatRequest   = "request"
	formatURL       = "url"
	formatJSON      = "json"
	formatRails     = "rails"
	formatPrintR    = "print_r"
	formatVarExport = "var_export"
)

var captureFormats = []string{formatAuto, formatBody, formatRequest, formatURL, formatJSON, formatRails, formatPrintR, formatVarExport}

// capture is a notification rebuilt from what the user captured.
type capture struct {
	// format says what the input was, in words.
	format string
	// body is the form body Alipay would have posted. For a log capture it
	// is rebuilt from the logged values, encoded in the declared charset.
	body []byte
	// decoded is true when the values came from a log (already decoded).
	decoded bool
	// notes are remarks about the input, printed before the verdict.
	notes []string
}

// parseCapture reads a capture in the given format (formatAuto: guess).
func parseCapture(data []byte, format string) (*capture, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from a Windows editor
	text := strings.TrimSpace(string(data))
	if text == "" {
		return nil, errors.New("the capture is empty")
	}
	if format == formatAuto {
		format = guessFormat(text)
	}
	switch format {
	case formatBody:
		// A body saved to a file usually gains a final newline that Alipay
		// never sent; everything else is kept as is.
		return &capture{format: "raw body", body: []byte(strings.TrimRight(string(data), "\r\n"))}, nil
	case formatRequest:
		return parseRequestCapture(text)
	case formatURL:
		return parseURLCapture(text)
	case formatJSON, formatRails, formatPrintR, formatVarExport:
		params, name, err := parseLoggedParams(text, format)
		if err != nil {
			return nil, err
		}
		return rebuildBody(params, name)
	default:
		return nil, fmt.Errorf("--format %q: want one of %s", format, strings.Join(captureFormats, ", "))
	}
}

var requestLine = regexp.MustCompile(`^[A-Z]+ \S+ HTTP/\d`)

func guessFormat(text string) string {
	firstLine, _, _ := strings.Cut(text, "\n")
	switch {
	case requestLine.MatchString(firstLine):
		return formatRequest
	case strings.HasPrefix(text, "http://") || strings.HasPrefix(text, "https://") ||
		(strings.HasPrefix(text, "/") && strings.Contains(firstLine, "?")):
		return formatURL
	case strings.Contains(text, "Array\n(") || strings.Contains(text, "Array\r\n(") || strings.HasPrefix(text, "Array"):
		return formatPrintR
	case strings.HasPrefix(text, "array (") || strings.HasPrefix(text, "array("):
		return formatVarExport
	case !strings.ContainsAny(text, " \t\r\n") && !strings.HasPrefix(text, "{"):
		return formatBody
	case strings.Contains(text, "{") && strings.Contains(text, "}"):
		inner := braced(text)
		if json.Valid([]byte(inner)) {
			return formatJSON
		}
		if strings.Contains(inner, `"=>`) || strings.Contains(inner, `" =>`) {
			return formatRails
		}
	}
	return formatBody
}

// parseRequestCapture reads a whole HTTP request: request line, headers, a
// blank line, the body. Alipay signs the body of its POST; the query string
// of the notify_url is not signed. A GET (a return_url redirect) carries
// everything in its query.
func parseRequestCapture(text string) (*capture, error) {
	text = strings.ReplaceAll(text, "\r\n", "\n")
	head, body, _ := strings.Cut(text, "\n\n")
	line, _, _ := strings.Cut(head, "\n")
	parts := strings.Fields(line)
	if len(parts) < 3 {
		return nil, fmt.Errorf("the first line %q is not an HTTP request line", truncate([]byte(line)))
	}
	method, target := parts[0], parts[1]
	u, err := url.Parse(target)
	if err != nil {
		return nil, fmt.Errorf("request target %q: %v", truncate([]byte(target)), err)
	}
	c := &capture{format: "HTTP request (" + method + ")"}
	if method == "GET" {
		c.format += ", parameters from the query (a return_url redirect)"
		c.body = []byte(u.RawQuery)
		return c, nil
	}
	c.body = []byte(strings.TrimRight(body, "\n"))
	if u.RawQuery != "" {
		var names []string
		for name := range u.Query() {
			names = append(names, name)
		}
		slices.Sort(names)
		c.notes = append(c.notes, fmt.Sprintf("the URL's query parameters (%s) are not signed by Alipay: left out, as the plugin does", strings.Join(names, ", ")))
	}
	return c, nil
}

// parseURLCapture reads a URL whose query holds the notification, such as a
// return_url redirect or a logged request URL.
func parseURLCapture(text string) (*capture, error) {
	line, _, _ := strings.Cut(text, "\n")
	u, err := url.Parse(strings.TrimSpace(line))
	if err != nil {
		return nil, fmt.Errorf("URL: %v", err)
	}
	if u.RawQuery == "" {
		return nil, errors.New("the URL has no query: give the body of the POST instead (see --format)")
	}
	return &capture{
		format: "URL query",
		body:   []byte(u.RawQuery),
		notes:  []string{"a POSTed notification is signed over its body: if the merchant's notify_url has its own query parameters, they are not signed"},
	}, nil
}

// parseLoggedParams reads parameters that a framework logged, already
// percent-decoded: a JSON object, a Rails hash, PHP print_r or var_export.
// A log line may have a prefix ("... Parameters: {...}").
func parseLoggedParams(text, format string) (map[string]string, string, error) {
	switch format {
	case formatJSON:
		if !strings.Contains(text, "{") {
			return nil, "", errors.New("no JSON object in the capture")
		}
		params, err := parseJSONParams(braced(text))
		return params, "JSON object", err
	case formatRails:
		if !strings.Contains(text, "{") {
			return nil, "", errors.New(`no {"key"=>"value", ...} hash in the capture`)
		}
		params, err := parseRubyHash(braced(text))
		return params, "Rails log line", err
	case formatPrintR:
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

func parseJSONParams(text string) (map[string]string, error) {
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

// parseRubyHash reads Ruby's Hash#inspect of string keys and values:
// {"k"=>"v", "k2"=>nil} (and Ruby 3.4's {"k" => "v"}).
func parseRubyHash(text string) (map[string]string, error) {
	p := &rubyParser{s: text}
	if !p.consume("{") {
		return nil, errors.New(`want a hash such as {"key"=>"value", ...}`)
	}
	params := make(map[string]string)
	p.space()
	if p.consume("}") {
		return params, nil
	}
	for {
		p.space()
		key, err := p.str()
		if err != nil {
			return nil, fmt.Errorf("hash key at byte %d: %v", p.i, err)
		}
		p.space()
		if !p.consume("=>") {
			return nil, fmt.Errorf(`hash: want "=>" after %q at byte %d`, key, p.i)
		}
		p.space()
		switch {
		case p.consume("nil"):
		case strings.HasPrefix(p.s[p.i:], `"`):
			value, err := p.str()
			if err != nil {
				return nil, fmt.Errorf("value of %q: %v", key, err)
			}
			params[key] = value
		default:
			return nil, fmt.Errorf("value of %q is not a string: Alipay sends every parameter as a string", key)
		}
		p.space()
		if p.consume("}") {
			return params, nil
		}
		if !p.consume(",") {
			return nil, fmt.Errorf(`hash: want "," or "}" after the value of %q at byte %d`, key, p.i)
		}
	}
}

type rubyParser struct {
	s string
	i int
}

func (p *rubyParser) space() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\n' || p.s[p.i] == '\t' || p.s[p.i] == '\r') {
		p.i++
	}
}

func (p *rubyParser) consume(tok string) bool {
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

// str reads a double-quoted Ruby string with inspect's escapes.
func (p *rubyParser) str() (string, error) {
	if !p.consume(`"`) {
		return "", errors.New("want a double-quoted string")
	}
	var b []byte
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch c {
		case '"':
			return string(b), nil
		case '\\':
			if p.i >= len(p.s) {
				return "", errors.New("unterminated escape")
			}
			e := p.s[p.i]
			p.i++
			switch e {
			case 'n':
				b = append(b, '\n')
			case 't':
				b = append(b, '\t')
			case 'r':
				b = append(b, '\r')
			case 'e':
				b = append(b, 0x1b)
			case 'f':
				b = append(b, '\f')
			case 'v':
				b = append(b, '\v')
			case 'a':
				b = append(b, 0x07)
			case 'b':
				b = append(b, '\b')
			case '0':
				b = append(b, 0)
			case 'x':
				if p.i+2 > len(p.s) {
					return "", errors.New(`short \x escape`)
				}
				v, err := strconv.ParseUint(p.s[p.i:p.i+2], 16, 8)
				if err != nil {
					return "", errors.New(`bad \x escape`)
				}
				b = append(b, byte(v))
				p.i += 2
			case 'u':
				var hex string
				if strings.HasPrefix(p.s[p.i:], "{") {
					end := strings.IndexByte(p.s[p.i:], '}')
					if end < 0 {
						return "", errors.New(`unterminated \u{...} escape`)
					}
					hex, p.i = p.s[p.i+1:p.i+end], p.i+end+1
				} else {
					if p.i+4 > len(p.s) {
						return "", errors.New(`short \u escape`)
					}
					hex, p.i = p.s[p.i:p.i+4], p.i+4
				}
				v, err := strconv.ParseUint(hex, 16, 32)
				if err != nil {
					return "", errors.New(`bad \u escape`)
				}
				b = utf8.AppendRune(b, rune(v))
			default: // \" \\ \# and anything else stand for themselves
				b = append(b, e)
			}
		default:
			b = append(b, c)
		}
	}
	return "", errors.New("unterminated string (the log line may be cut off)")
}

var printREntry = regexp.MustCompile(`^\s*\[([^\]]+)\] => ?(.*)$`)

// parsePrintR reads PHP's print_r of an array of strings:
//
//	Array
//	(
//	    [key] => value
//	)
func parsePrintR(text string) (map[string]string, error) {
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	params := make(map[string]string)
	var last string
	for _, line := range lines {
		if m := printREntry.FindStringSubmatch(line); m != nil {
			last = m[1]
			params[last] = m[2]
			continue
		}
		switch strings.TrimSpace(line) {
		case "Array", "(", "":
			continue
		case ")":
			last = ""
			continue
		}
		if last == "" {
			continue // the log line's own prefix or suffix
		}
		params[last] += "\n" + line // a value with a line break
	}
	if len(params) == 0 {
		return nil, errors.New("no [key] => value lines in the print_r output")
	}
	return params, nil
}

// parseVarExport reads PHP's var_export of an array of strings:
// array ( 'key' => 'value', ... ).
func parseVarExport(text string) (map[string]string, error) {
	p := &rubyParser{s: text}
	start := strings.Index(text, "(")
	if start < 0 {
		return nil, errors.New("want array ( 'key' => 'value', ... )")
	}
	p.i = start + 1
	params := make(map[string]string)
	for {
		p.space()
		if p.consume(")") {
			return params, nil
		}
		key, err := p.phpStr()
		if err != nil {
			return nil, fmt.Errorf("array key at byte %d: %v", p.i, err)
		}
		p.space()
		if !p.consume("=>") {
			return nil, fmt.Errorf(`want "=>" after '%s'`, key)
		}
		p.space()
		switch {
		case p.consume("NULL"):
		case strings.HasPrefix(p.s[p.i:], "'"):
			value, err := p.phpStr()
			if err != nil {
				return nil, fmt.Errorf("value of '%s': %v", key, err)
			}
			params[key] = value
		default:
			return nil, fmt.Errorf("value of '%s' is not a string: Alipay sends every parameter as a string", key)
		}
		p.space()
		p.consume(",")
	}
}

// phpStr reads a single-quoted PHP string (escapes: \' and \\).
func (p *rubyParser) phpStr() (string, error) {
	if !p.consume("'") {
		return "", errors.New("want a single-quoted string")
	}
	var b strings.Builder
	for p.i < len(p.s) {
		c := p.s[p.i]
		p.i++
		switch {
		case c == '\'':
			return b.String(), nil
		case c == '\\' && p.i < len(p.s) && (p.s[p.i] == '\'' || p.s[p.i] == '\\'):
			b.WriteByte(p.s[p.i])
			p.i++
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated string")
}

// rebuildBody encodes logged parameters into the body Alipay would have
// sent: the values in the bytes of the declared charset, percent-encoded.
func rebuildBody(params map[string]string, name string) (*capture, error) {
	if len(params) == 0 {
		return nil, errors.New("the capture holds no parameters")
	}
	c := &capture{format: name + " (values already decoded; the body is rebuilt from them)", decoded: true}
	if params["sign"] == "[FILTERED]" {
		return nil, errors.New(`sign is "[FILTERED]" in this log (e.g. Rails filter_parameters): the signature was not logged, so it cannot be checked`)
	}
	gbk := false
	switch strings.ToLower(params["charset"]) {
	case "gbk", "gb2312", "gb18030":
		gbk = true
	}
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
			c.notes = append(c.notes, fmt.Sprintf("%s holds U+FFFD (�): the log already shows a charset mix-up, and the bytes Alipay signed are lost", k))
		}
		if gbk {
			if converted, err := enc.String(value); err == nil {
				value = converted
			} else {
				c.notes = append(c.notes, fmt.Sprintf("%s cannot be written in GBK: kept as UTF-8", k))
			}
		}
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(url.QueryEscape(k))
		b.WriteByte('=')
		b.WriteString(url.QueryEscape(value))
	}
	c.body = []byte(b.String())
	return c, nil
}
