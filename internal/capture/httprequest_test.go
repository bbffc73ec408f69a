package capture

import (
	"strings"
	"testing"
)

func TestParseHTTPRequest(t *testing.T) {
	const body = "{\"a\": 1,\r\n \"b\": \"x\"}"
	for _, tc := range []struct {
		name, capture  string
		method, target string
		header         map[string]string
		body           string
		notes          []string
		antom          bool
	}{
		{
			name:    "CRLF head, body kept as is (CRLF inside)",
			capture: "\xef\xbb\xbf\r\nPOST /antom/notify?x=1 HTTP/1.1\r\nHost: shop.example\r\nclient-id:  SANDBOX_1 \r\nSignature: algorithm=RSA256,\r\n\tsignature=abc\r\n\r\n" + body,
			method:  "POST", target: "/antom/notify?x=1",
			header: map[string]string{"Client-Id": "SANDBOX_1", "Signature": "algorithm=RSA256, signature=abc", "Host": "shop.example"},
			body:   body, antom: true,
		},
		{
			name:    "LF head, final newline of the file trimmed",
			capture: "POST /n HTTP/1.1\nContent-Type: application/json\n\n{\"a\":1}\n\n",
			method:  "POST", target: "/n", header: map[string]string{"Content-Type": "application/json"}, body: `{"a":1}`,
		},
		{
			name:    "Content-Length: exact, the rest left out",
			capture: "POST /n HTTP/1.1\r\nContent-Length: 7\r\nSignature: s\r\n\r\n{\"a\":1}\r\n",
			method:  "POST", target: "/n", body: `{"a":1}`, antom: true,
		},
		{
			name:    "Content-Length: a body with trailing white space of its own",
			capture: "POST /n HTTP/1.1\nContent-Length: 9\n\n{\"a\":1}\r\n\n",
			method:  "POST", target: "/n", body: "{\"a\":1}\r\n",
		},
		{
			name:    "Content-Length: more bytes after it",
			capture: "POST /n HTTP/1.1\nContent-Length: 7\n\n{\"a\":1}garbage",
			method:  "POST", target: "/n", body: `{"a":1}`, notes: []string{"7 bytes after the Content-Length (7) are left out"},
		},
		{
			name:    "Content-Length: a cut body",
			capture: "POST /n HTTP/1.1\nContent-Length: 70\n\n{\"a\":1}",
			method:  "POST", target: "/n", body: `{"a":1}`, notes: []string{"the body is 7 bytes, its Content-Length says 70: the capture is cut, or its line endings were changed"},
		},
		{
			name:    "chunked",
			capture: "POST /n HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n",
			method:  "POST", target: "/n", body: `{"a":1}`, notes: []string{"the chunked body was decoded"},
		},
		{
			name:    "no body, no version, absolute target",
			capture: "GET http://shop.example/n\nSignature: x",
			method:  "GET", target: "http://shop.example/n", antom: true,
		},
		{
			name:    "LF then CRLF blank line",
			capture: "POST /n HTTP/1.1\r\nA: 1\r\n\n{}",
			method:  "POST", target: "/n", header: map[string]string{"A": "1"}, body: "{}",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseHTTPRequest([]byte(tc.capture))
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != tc.method || r.Target != tc.target || string(r.Body) != tc.body || r.IsAntom() != tc.antom {
				t.Errorf("got %s %s body %q antom %v", r.Method, r.Target, r.Body, r.IsAntom())
			}
			for k, v := range tc.header {
				if got := r.Header.Get(k); got != v {
					t.Errorf("header %s: %q, want %q", k, got, v)
				}
			}
			if strings.Join(r.Notes, "|") != strings.Join(tc.notes, "|") {
				t.Errorf("notes %q, want %q", r.Notes, tc.notes)
			}
			if !LooksLikeHTTPRequest([]byte(tc.capture)) && strings.Contains(tc.capture, "HTTP/1.1") {
				t.Error("LooksLikeHTTPRequest: false")
			}
		})
	}
}

func TestParseHTTPRequestErrors(t *testing.T) {
	for _, tc := range []struct{ capture, want string }{
		{" \r\n", "the capture is empty"},
		{`{"a":1}`, `not an HTTP request: the first line should be a request line such as POST /antom/notify HTTP/1.1 (it is "{\"a\":1}")`},
		{"post /n HTTP/1.1\n\n{}", "not an HTTP request"},
		{"POST /n HTTP/x\n\n{}", "not an HTTP request"},
		{"POST /n HTTP/1.1\nno colon here\n\n{}", `line 2 of the request's head, "no colon here", is not a header field (Name: value)`},
		{"POST /n HTTP/1.1\nContent-Length: -1\n\n{}", `Content-Length "-1" is not a length`},
		{"POST /n HTTP/1.1\nTransfer-Encoding: chunked\n\n{}", "Transfer-Encoding: chunked, but the body is not in chunks"},
	} {
		if _, err := ParseHTTPRequest([]byte(tc.capture)); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %s", tc.capture, err, tc.want)
		}
	}
	if LooksLikeHTTPRequest([]byte("a=1&b=2")) {
		t.Error("a body looks like a request")
	}
}
