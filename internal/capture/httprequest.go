package capture

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	"github.com/caddy-alipay/caddy-alipay-notify/alipay"
)

// HTTPRequest is a whole HTTP request as captured (request line, headers,
// a blank line, the body), with its body kept byte for byte: what an Antom
// notification's signature covers.
type HTTPRequest struct {
	// Method and Target are the request line's method and request target,
	// as written.
	Method, Target string
	// Header holds the header fields, values trimmed of the white space
	// around them (as HTTP reads them).
	Header http.Header
	// Body is the body, exact: Content-Length bytes when the capture
	// declares it; otherwise everything after the blank line, with the
	// final line breaks that saving a file adds trimmed.
	Body []byte
	// Notes are remarks about the capture.
	Notes []string
}

// IsAntom reports whether the request is an Antom notification as
// alipay_notify decides it: it carries a Signature header.
func (r *HTTPRequest) IsAntom() bool { return r.Header.Get("Signature") != "" }

var (
	methodToken  = regexp.MustCompile(`^[A-Z]+$`)
	httpVersion  = regexp.MustCompile(`^HTTP/\d(\.\d)?$`)
	headerName   = regexp.MustCompile(`^[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+$`)
	errNoRequest = errors.New("not an HTTP request: the first line should be a request line such as POST /antom/notify HTTP/1.1")
)

// headerFolding starts a continued header line, and surrounds values.
const headerFolding = " \t"

// LooksLikeHTTPRequest reports whether data starts with a request line.
func LooksLikeHTTPRequest(data []byte) bool {
	text := strings.TrimLeft(string(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))), " \t\r\n")
	line, _, _ := strings.Cut(text, "\n")
	return requestLine.MatchString(strings.TrimRight(line, "\r"))
}

// ParseHTTPRequest reads a whole HTTP request, keeping the body's bytes as
// they are (line breaks and white space included: only the head's line
// endings may be CRLF or LF). A chunked body (Transfer-Encoding: chunked)
// is decoded.
func ParseHTTPRequest(data []byte) (*HTTPRequest, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	data = bytes.TrimLeft(data, " \t\r\n")
	if len(data) == 0 {
		return nil, errors.New("the capture is empty")
	}
	// The head ends at the first empty line, CRLF or LF.
	head, body := data, []byte(nil)
	crlf, lf := bytes.Index(data, []byte("\r\n\r\n")), bytes.Index(data, []byte("\n\n"))
	switch {
	case crlf >= 0 && (lf < 0 || crlf < lf):
		head, body = data[:crlf], data[crlf+4:]
	case lf >= 0:
		head, body = data[:lf], data[lf+2:]
		if bytes.HasSuffix(head, []byte("\r")) { // "\r\n\n"
			head = head[:len(head)-1]
		}
	}
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	parts := strings.Fields(lines[0])
	if len(parts) < 2 || len(parts) > 3 || !methodToken.MatchString(parts[0]) || (len(parts) == 3 && !httpVersion.MatchString(parts[2])) {
		return nil, fmt.Errorf("%w (it is %q)", errNoRequest, alipay.Truncate(lines[0]))
	}
	r := &HTTPRequest{Method: parts[0], Target: parts[1], Header: make(http.Header)}
	var last string
	for i, line := range lines[1:] {
		if line == "" {
			continue
		}
		if strings.ContainsAny(line[:1], headerFolding) && last != "" { // obsolete line folding
			values := r.Header[last]
			values[len(values)-1] += " " + strings.Trim(line, headerFolding)
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok || !headerName.MatchString(name) {
			return nil, fmt.Errorf("line %d of the request's head, %q, is not a header field (Name: value)", i+2, alipay.Truncate(line))
		}
		last = textproto.CanonicalMIMEHeaderKey(name)
		r.Header.Add(last, strings.Trim(value, headerFolding))
	}
	var err error
	if r.Body, err = r.exactBody(body); err != nil {
		return nil, err
	}
	return r, nil
}

// exactBody cuts the body as the capture declares it.
func (r *HTTPRequest) exactBody(body []byte) ([]byte, error) {
	if strings.EqualFold(r.Header.Get("Transfer-Encoding"), "chunked") {
		decoded, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(body)))
		if err != nil {
			return nil, fmt.Errorf("Transfer-Encoding: chunked, but the body is not in chunks (%v): remove the header if the capture shows the body decoded", err)
		}
		r.Notes = append(r.Notes, "the chunked body was decoded")
		return decoded, nil
	}
	cl := r.Header.Get("Content-Length")
	if cl == "" {
		return bytes.TrimRight(body, "\r\n"), nil
	}
	n, err := strconv.Atoi(cl)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("Content-Length %q is not a length", alipay.Truncate(cl))
	}
	switch {
	case len(body) < n:
		r.Notes = append(r.Notes, fmt.Sprintf("the body is %d bytes, its Content-Length says %d: the capture is cut, or its line endings were changed", len(body), n))
	case len(body) > n:
		extra := body[n:]
		if len(bytes.TrimRight(extra, "\r\n")) > 0 {
			r.Notes = append(r.Notes, fmt.Sprintf("%d bytes after the Content-Length (%d) are left out", len(extra), n))
		}
		body = body[:n]
	}
	return body, nil
}
