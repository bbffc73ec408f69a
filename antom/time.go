package antom

import (
	"fmt"
	"strings"
	"time"
)

// ParseRequestTime reads a Request-Time header value, for an age check and
// for the time a notification was sent. Antom sends two forms, and both are
// accepted:
//
//   - epoch milliseconds, 1 to 15 ASCII digits and nothing else
//     ("1685599933871"). Always milliseconds, never seconds: a value in
//     seconds reads as January 1970 and fails any age check, which is the
//     honest result for a sender that does not follow the protocol.
//   - an RFC 3339 date-time, with or without fractional seconds (1 to 9
//     digits after a '.'), with 'Z' or a ±hh:mm offset
//     ("2019-04-04T12:08:56.253+05:30", "2025-05-19T01:52:32Z"). 'T' and
//     'Z' may be lower case, as RFC 3339 allows.
//
// The time keeps the offset it was given (UTC for the first form), so that
// it can be shown as the sender wrote it. Anything else, including forms Go's time.Parse would
// accept but RFC 3339 does not (a ',' before the fraction, an offset of 24
// hours or more, a 10-digit fraction silently truncated), is an error
// wrapping ErrBadRequestTime.
//
// Note that the signature covers the header string as received, not the
// parsed time: the parse only decides whether the string is a time, and
// when it was.
func ParseRequestTime(s string) (time.Time, error) {
	if ms, ok := parseEpochMillis(s); ok {
		return time.UnixMilli(ms).UTC(), nil
	}
	if !isRFC3339Shape(s) {
		return time.Time{}, fmt.Errorf("%w: %q is neither epoch milliseconds nor RFC 3339", ErrBadRequestTime, clip(s))
	}
	if strings.ContainsAny(s, "tz") {
		s = strings.ToUpper(s) // only digits and punctuation besides T and Z
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		// The shape was right but a field is out of range (month 13,
		// February 30, second 60, ...).
		return time.Time{}, fmt.Errorf("%w: %v", ErrBadRequestTime, err)
	}
	return t, nil
}

// parseEpochMillis reads 1 to 15 digits: up to the year 33658, and far
// from overflowing an int64.
func parseEpochMillis(s string) (int64, bool) {
	if s == "" || len(s) > 15 {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n, true
}

// isRFC3339Shape checks RFC 3339's date-time grammar character by
// character (the ranges of the fields are left to time.Parse):
//
//	YYYY-MM-DDThh:mm:ss[.f{1,9}](Z|±hh:mm)
//
// Go's time.Parse alone is more lenient than the grammar (it takes ',' for
// '.', any number of fraction digits, offsets up to 99 hours).
func isRFC3339Shape(s string) bool {
	const base = "dddd-dd-ddTdd:dd:dd" // d: a digit
	if len(s) < len(base)+1 {
		return false
	}
	for i := 0; i < len(base); i++ {
		switch base[i] {
		case 'd':
			if !isDigit(s[i]) {
				return false
			}
		case 'T':
			if s[i] != 'T' && s[i] != 't' {
				return false
			}
		default:
			if s[i] != base[i] {
				return false
			}
		}
	}
	rest := s[len(base):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 || n > 10 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z" || rest == "z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':' &&
		isDigit(rest[1]) && isDigit(rest[2]) && isDigit(rest[4]) && isDigit(rest[5]):
		return rest[1:3] <= "23" && rest[4:6] <= "59"
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
