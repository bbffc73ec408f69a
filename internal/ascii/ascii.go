// Package ascii holds the byte classes that the Alipay and Antom protocol
// packages (and the tools over them) read: hexadecimal digits of
// percent-escapes, the standard base64 alphabet, and plain ASCII text.
package ascii

// Only reports whether every byte of s is ASCII: text that reads the same
// in UTF-8 and GBK, so that no charset conversion applies to it.
func Only(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// IsHex reports whether c is a hexadecimal digit, either case.
func IsHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// Unhex returns the value of the hexadecimal digit c (IsHex(c) must hold).
func Unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// IsBase64 reports whether c belongs to standard base64, padding included.
func IsBase64(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '='
}
