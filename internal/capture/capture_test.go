package capture

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
	"golang.org/x/text/encoding/simplifiedchinese"
)

// params decodes a rebuilt body into a map (bytes as sent).
func params(t *testing.T, body []byte) map[string]string {
	t.Helper()
	got, err := alipay.ParseForm(body)
	if err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	m := make(map[string]string, len(got))
	for _, p := range got {
		m[p.Key] = p.Value
	}
	return m
}

func TestGuess(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"POST /notify HTTP/1.1\nHost: x\n\na=1", Request},
		{"GET /return?a=1 HTTP/1.0", Request},
		{"https://shop.example.com/return?a=1", URL},
		{"http://shop.example.com/return?a=1", URL},
		{"/alipay/return?a=1&b=2", URL},
		{"/alipay/notify", Body}, // a path without a query
		{"Array\n(\n    [a] => 1\n)", PrintR},
		{"Array\r\n(\r\n    [a] => 1\r\n)", PrintR},
		{"[2024] notify: Array\n(\n    [a] => 1\n)", PrintR},
		{"array (\n  'a' => '1',\n)", VarExport},
		{"array('a' => '1')", VarExport},
		{"a=1&b=2", Body},
		{`{"a":"1"}`, JSON},
		{`Parameters: {"a":"1"} took 3ms`, JSON},
		{`Parameters: {"a"=>"1", "b"=>nil}`, Rails},
		{`{"a" => "1"}`, Rails},
		{`{not json, not ruby}`, Body},
		{"a=1 b=2", Body},
	} {
		if got := Guess(tc.text); got != tc.want {
			t.Errorf("Guess(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
}

func TestParse(t *testing.T) {
	gbkSubject, _ := simplifiedchinese.GBK.NewEncoder().String("测试商品")
	for _, tc := range []struct {
		name, input, format string
		wantFormat          string
		want                map[string]string // the parameters of the rebuilt body
		wantBody            string            // or the body itself
		decoded             bool
		notes               []string // substrings, one per note
	}{
		{name: "body", input: "a=1&b=x+y", format: Auto, wantFormat: "raw body", wantBody: "a=1&b=x+y"},
		{name: "body with final newline", input: "a=1&b=2\r\n", format: Auto, wantFormat: "raw body", wantBody: "a=1&b=2"},
		{name: "body with a BOM", input: "\xef\xbb\xbfa=1", format: Auto, wantFormat: "raw body", wantBody: "a=1"},
		{name: "body kept as is", input: " a=1 \n", format: Body, wantFormat: "raw body", wantBody: " a=1 "},
		{
			name:   "POST request with a query",
			input:  "POST /alipay/notify?shop_id=12&from=x HTTP/1.1\r\nHost: shop.example.com\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\na=1&b=2\r\n",
			format: Auto, wantFormat: "HTTP request (POST)", wantBody: "a=1&b=2",
			notes: []string{"the URL's query parameters (from, shop_id) are not signed by Alipay"},
		},
		{name: "POST request without a body", input: "POST /notify HTTP/1.1\nHost: x", format: Request, wantFormat: "HTTP request (POST)", wantBody: ""},
		{
			name: "GET request", input: "GET /alipay/return?a=1&b=2 HTTP/1.1\nHost: x\n\n", format: Auto,
			wantFormat: "HTTP request (GET), parameters from the query (a return_url redirect)", wantBody: "a=1&b=2",
		},
		{
			name: "URL", input: "https://shop.example.com/alipay/return?a=1&b=%E4%B8%AD\nsecond line", format: Auto,
			wantFormat: "URL query", wantBody: "a=1&b=%E4%B8%AD", notes: []string{"signed over its body"},
		},
		{
			name: "JSON", input: `{"a":"1","b":"say \"hi\" 中文","c":null}`, format: Auto,
			wantFormat: "JSON object (values already decoded; the body is rebuilt from them)", want: map[string]string{"a": "1", "b": `say "hi" 中文`}, decoded: true,
		},
		{
			name: "JSON in a log line", input: `notify params: {"a":"1"} (3ms)`, format: JSON,
			wantFormat: "JSON object (values already decoded; the body is rebuilt from them)", want: map[string]string{"a": "1"}, decoded: true,
		},
		{
			name:   "Rails log line",
			input:  `I, [2015-07-01T22:31:17.162614 #1407]  INFO -- :   Parameters: {"a"=>"1", "b"=>nil, "c"=>"x\"y\\z\n\t\r\e\f\v\a\b\0\x41\u00e9\u{1F600}\#{q}"}`,
			format: Auto, wantFormat: "Rails log line (values already decoded; the body is rebuilt from them)",
			want: map[string]string{"a": "1", "c": "x\"y\\z\n\t\r\x1b\f\v\a\b\x00Aé😀#{q}"}, decoded: true,
		},
		{
			name: "Ruby 3.4 hash", input: `{"a" => "1", "b" => "2"}`, format: Auto,
			wantFormat: "Rails log line (values already decoded; the body is rebuilt from them)", want: map[string]string{"a": "1", "b": "2"}, decoded: true,
		},
		{
			name:   "print_r",
			input:  "[2024-01-01] notify\nArray\n(\n    [a] => 1\n    [b] => line one\nline two\n    [c] =>\n)\ntrailer",
			format: Auto, wantFormat: "PHP print_r (values already decoded; the body is rebuilt from them)",
			want: map[string]string{"a": "1", "b": "line one\nline two", "c": ""}, decoded: true,
		},
		{
			name:   "var_export",
			input:  "array (\n  'a' => '1',\n  'b' => 'it\\'s \\\\ here',\n  'c' => NULL,\n  'd' => 'x'\n)",
			format: Auto, wantFormat: "PHP var_export (values already decoded; the body is rebuilt from them)",
			want: map[string]string{"a": "1", "b": `it's \ here`, "d": "x"}, decoded: true,
		},
		{
			name: "GBK values rebuilt in GBK bytes", input: `{"charset":"gbk","subject":"测试商品"}`, format: Auto,
			wantFormat: "JSON object (values already decoded; the body is rebuilt from them)",
			want:       map[string]string{"charset": "gbk", "subject": gbkSubject}, decoded: true,
		},
		{
			name: "GB2312 charset", input: `{"charset":"GB2312","subject":"测试商品"}`, format: JSON,
			wantFormat: "JSON object (values already decoded; the body is rebuilt from them)",
			want:       map[string]string{"charset": "GB2312", "subject": gbkSubject}, decoded: true,
		},
		{
			name: "a value GBK cannot write", input: `{"charset":"gbk","subject":"😀"}`, format: JSON,
			wantFormat: "JSON object (values already decoded; the body is rebuilt from them)",
			want:       map[string]string{"charset": "gbk", "subject": "😀"}, decoded: true,
			notes: []string{"subject cannot be written in GBK: kept as UTF-8"},
		},
		{
			name: "a replacement character", input: "{\"subject\":\"\uFFFD\"}", format: JSON,
			wantFormat: "JSON object (values already decoded; the body is rebuilt from them)",
			want:       map[string]string{"subject": "\uFFFD"}, decoded: true,
			notes: []string{"subject holds U+FFFD"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.input), tc.format)
			if err != nil {
				t.Fatal(err)
			}
			if c.Format != tc.wantFormat {
				t.Errorf("format %q, want %q", c.Format, tc.wantFormat)
			}
			if c.Decoded != tc.decoded {
				t.Errorf("decoded %v, want %v", c.Decoded, tc.decoded)
			}
			if tc.want != nil {
				got := params(t, c.Body)
				if len(got) != len(tc.want) {
					t.Errorf("parameters %q, want %q", got, tc.want)
				}
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
				// Rebuilt bodies are sorted and encoded as Alipay does.
				if strings.Contains(string(c.Body), " ") {
					t.Errorf("body not encoded: %q", c.Body)
				}
			} else if string(c.Body) != tc.wantBody {
				t.Errorf("body %q, want %q", c.Body, tc.wantBody)
			}
			if len(c.Notes) != len(tc.notes) {
				t.Fatalf("notes %q, want %d", c.Notes, len(tc.notes))
			}
			for i, want := range tc.notes {
				if !strings.Contains(c.Notes[i], want) {
					t.Errorf("note %q lacks %q", c.Notes[i], want)
				}
			}
		})
	}
}

func TestParseRebuildsSorted(t *testing.T) {
	c, err := Parse([]byte(`{"b":"2","a":"x y&z=1"}`), JSON)
	if err != nil {
		t.Fatal(err)
	}
	if want := "a=" + url.QueryEscape("x y&z=1") + "&b=2"; string(c.Body) != want {
		t.Errorf("body %q, want %q", c.Body, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ name, input, format, want string }{
		{"empty", "", Auto, "the capture is empty"},
		{"blank", " \r\n\t", Auto, "the capture is empty"},
		{"BOM only", "\xef\xbb\xbf\n", Auto, "the capture is empty"},
		{"request line", "POST /x", Request, `the first line "POST /x" is not an HTTP request line`},
		{"request target", "POST http://%zz HTTP/1.1", Request, `request target "http://%zz"`},
		{"URL", "http://%zz/", URL, "URL: "},
		{"URL without query", "https://shop.example.com/return", URL, "the URL has no query"},
		{"no JSON object", "a=1", JSON, "no JSON object in the capture"},
		{"not JSON", "{a:1}", JSON, "not a JSON object"},
		{"JSON number", `{"total_amount": 0.01}`, JSON, `JSON value of "total_amount" is the number 0.01, not a string`},
		{"JSON boolean", `{"a": true}`, JSON, `is a boolean`},
		{"JSON array", `{"a": []}`, JSON, `is an array`},
		{"JSON object", `{"a": {}}`, JSON, `is an object`},
		{"JSON empty", `{}`, JSON, "the capture holds no parameters"},
		{"JSON only nulls", `{"a": null}`, JSON, "the capture holds no parameters"},
		{"filtered sign", `Parameters: {"sign"=>"[FILTERED]", "a"=>"b"}`, Auto, `sign is "[FILTERED]"`},
		{"no hash", "a=1", Rails, `no {"key"=>"value", ...} hash`},
		{"empty hash", "{}", Rails, "the capture holds no parameters"},
		{"empty hash with space", "{ }", Rails, "the capture holds no parameters"},
		{"hash key", `{1=>"a"}`, Rails, "hash key at byte 1: want a double-quoted string"},
		{"hash arrow", `{"a" "b"}`, Rails, `hash: want "=>" after "a" at byte 5`},
		{"hash value", `{"a"=>1}`, Rails, `value of "a" is not a string`},
		{"hash comma", `{"a"=>"1" "b"=>"2"}`, Rails, `hash: want "," or "}" after the value of "a"`},
		{"unterminated", `{"a"=>"1}`, Rails, "unterminated string (the log line may be cut off)"},
		{"unterminated escape", `{"a"=>"1\}`, Rails, "unterminated"},
		{"short \\x", `{"a"=>"\x4`, Rails, `value of "a": short \x escape`},
		{"bad \\x", `{"a"=>"\xzz"}`, Rails, `bad \x escape`},
		{"short \\u", `{"a"=>"\u00`, Rails, `short \u escape`},
		{"bad \\u", `{"a"=>"\uzzzz"}`, Rails, `bad \u escape`},
		{"unterminated \\u{", `{"a"=>"\u{123`, Rails, `unterminated \u{...} escape`},
		{"bad \\u{", `{"a"=>"\u{zz}"}`, Rails, `bad \u escape`},
		{"print_r without entries", "Array\n(\n)\n", PrintR, "no [key] => value lines in the print_r output"},
		{"var_export without (", "array", VarExport, "want array ( 'key' => 'value', ... )"},
		{"var_export key", "array ( a => 'b' )", VarExport, "array key at byte 8: want a single-quoted string"},
		{"var_export arrow", "array ( 'a' 'b' )", VarExport, `want "=>" after 'a'`},
		{"var_export value", "array ( 'a' => 1 )", VarExport, "value of 'a' is not a string"},
		{"var_export unterminated value", "array ( 'a' => 'b )", VarExport, "value of 'a': unterminated string"},
		{"var_export unterminated key", "array ( 'a", VarExport, "unterminated string"},
		{"var_export empty", "array ( )", VarExport, "the capture holds no parameters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte(tc.input), tc.format)
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want %q", err, tc.want)
			}
		})
	}
}

func TestParseUnknownFormat(t *testing.T) {
	_, err := Parse([]byte("a=1"), "xml")
	var fe *FormatError
	if !errors.As(err, &fe) || fe.Format != "xml" {
		t.Fatalf("error %v, want a *FormatError", err)
	}
	if want := `format "xml": want one of auto, body, request, url, json, rails, print_r, var_export`; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	// An empty capture is reported before the format.
	if _, err := Parse(nil, "xml"); err == nil || err.Error() != "the capture is empty" {
		t.Errorf("empty capture: %v", err)
	}
}

func TestJSONParams(t *testing.T) {
	got, err := JSONParams(`{"a":"1","b":null,"c":""}`)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["a"] != "1" || got["c"] != "" {
		t.Errorf("got %q", got)
	}
	if _, err := JSONParams(`["a"]`); err == nil || !strings.Contains(err.Error(), "not a JSON object") {
		t.Errorf("array: %v", err)
	}
}
