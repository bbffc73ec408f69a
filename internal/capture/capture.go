// Package capture reads a notification as a merchant finds it while
// debugging: the raw body, a whole HTTP request, a URL, or the parameters
// as a framework logged them (a Rails "Parameters: {"k"=>"v", ...}" line, a
// JSON object, PHP's print_r or var_export). Parse turns each into the form
// body that Alipay would have posted, for caddy alipay-notify verify to
// check as the handler does.
package capture

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// The formats, as the verify command's --format names them.
const (
	Auto      = "auto" // guess from the content
	Body      = "body"
	Request   = "request"
	URL       = "url"
	JSON      = "json"
	Rails     = "rails"
	PrintR    = "print_r"
	VarExport = "var_export"
)

// Formats lists every format Parse takes, Auto first.
var Formats = []string{Auto, Body, Request, URL, JSON, Rails, PrintR, VarExport}

// Capture is a notification rebuilt from what the user captured.
type Capture struct {
	// Format says what the input was, in words ("raw body", "Rails log
	// line (values already decoded; ...)").
	Format string
	// Body is the form body Alipay would have posted. For a log capture it
	// is rebuilt from the logged values, encoded in the declared charset.
	Body []byte
	// Decoded is true when the values came from a log (already decoded).
	Decoded bool
	// Notes are remarks about the input, printed before the verdict.
	Notes []string
}

// FormatError is Parse's error for a format that is not one of Formats.
type FormatError struct {
	Format string
}

// Error names the format and the formats there are; the verify command
// reports it as its --format flag.
func (e *FormatError) Error() string {
	return fmt.Sprintf("format %q: want one of %s", e.Format, strings.Join(Formats, ", "))
}

// Parse reads a capture in the given format (Auto: guess it). The error
// names what is wrong with the input; a *FormatError for an unknown format.
func Parse(data []byte, format string) (*Capture, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // a BOM from a Windows editor
	text := strings.TrimSpace(string(data))
	if text == "" {
		return nil, errors.New("the capture is empty")
	}
	if format == Auto {
		format = Guess(text)
	}
	switch format {
	case Body:
		// A body saved to a file usually gains a final newline that Alipay
		// never sent; everything else is kept as is.
		return &Capture{Format: "raw body", Body: []byte(strings.TrimRight(string(data), "\r\n"))}, nil
	case Request:
		return parseRequest(text)
	case URL:
		return parseURL(text)
	case JSON, Rails, PrintR, VarExport:
		params, name, err := parseLogged(text, format)
		if err != nil {
			return nil, err
		}
		return rebuildBody(params, name)
	default:
		return nil, &FormatError{Format: format}
	}
}

var requestLine = regexp.MustCompile(`^[A-Z]+ \S+ HTTP/\d`)

// Guess names the format of a capture (trimmed of surrounding space) from
// its content; Body when nothing else fits.
func Guess(text string) string {
	firstLine, _, _ := strings.Cut(text, "\n")
	switch {
	case requestLine.MatchString(firstLine):
		return Request
	case strings.HasPrefix(text, "http://") || strings.HasPrefix(text, "https://") ||
		(strings.HasPrefix(text, "/") && strings.Contains(firstLine, "?")):
		return URL
	case strings.Contains(text, "Array\n(") || strings.Contains(text, "Array\r\n(") || strings.HasPrefix(text, "Array"):
		return PrintR
	case strings.HasPrefix(text, "array (") || strings.HasPrefix(text, "array("):
		return VarExport
	case !strings.ContainsAny(text, " \t\r\n") && !strings.HasPrefix(text, "{"):
		return Body
	case strings.Contains(text, "{") && strings.Contains(text, "}"):
		inner := braced(text)
		if json.Valid([]byte(inner)) {
			return JSON
		}
		if strings.Contains(inner, `"=>`) || strings.Contains(inner, `" =>`) {
			return Rails
		}
	}
	return Body
}
