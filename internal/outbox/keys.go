package outbox

import (
	"crypto/sha256"
	"encoding/hex"
	"path"
	"strings"
)

// KeyPrefix is where the outbox lives in the storage. Each handler's entries
// are under KeyPrefix/<Namespace(forward)>/, one key per entry.
const KeyPrefix = "alipay_notify/outbox"

// entrySuffix ends every entry key. Other keys under a namespace (a temporary
// file that a crash left behind) are ignored, and swept after an hour.
const entrySuffix = ".json"

// maxKeyName bounds the escaped id in a key; a longer one is hashed, so that
// a key stays well within any file system's name limit.
const maxKeyName = 128

// Namespace is the storage folder of the handler whose forward URL is
// forward: the first 16 hex digits of its SHA-256. Entries of handlers with
// different forward URLs never meet; handlers with the same forward URL share
// one namespace (one outbox).
func Namespace(forward string) string {
	sum := sha256.Sum256([]byte(forward))
	return hex.EncodeToString(sum[:8])
}

// validNamespace reports whether s has the shape Namespace gives.
func validNamespace(s string) bool {
	if len(s) != 16 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isLowerHex(s[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

func namespacePrefix(ns string) string { return path.Join(KeyPrefix, ns) }

// replayKey is the key whose value changes at every replay in namespace ns,
// so that every instance's Worker re-reads that namespace's delivered and
// dead entries (which it otherwise re-reads only every minute) at its next
// scan. It sits next to the namespace folders, not in one.
func replayKey(ns string) string { return path.Join(KeyPrefix, ns+".replayed") }

// entryKey is the storage key of the entry id in namespace ns.
func entryKey(ns, id string) string {
	return path.Join(KeyPrefix, ns, keyName(id)+entrySuffix)
}

// keyName maps a webhook-id to one key component, injectively and the same
// way on every storage: ASCII lower-case letters, digits, '-' and '_' stand
// for themselves, every other byte (upper-case letters included, so that
// two ids that differ only in case never meet on a case-insensitive file
// system) is '~' and two lower-case hex digits. An escaped name longer than
// maxKeyName is replaced by the SHA-256 of the id in hex followed by
// ".sha256": escaping never produces a '.', so the two forms cannot collide.
func keyName(id string) string {
	var b strings.Builder
	b.Grow(len(id))
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_':
			b.WriteByte(c)
		default:
			const digits = "0123456789abcdef"
			b.WriteByte('~')
			b.WriteByte(digits[c>>4])
			b.WriteByte(digits[c&0xf])
		}
		if b.Len() > maxKeyName {
			sum := sha256.Sum256([]byte(id))
			return hex.EncodeToString(sum[:]) + ".sha256"
		}
	}
	return b.String()
}

// lockName is the name of the storage lock that guards the entry at key.
// Only hex digits and '_', so that every storage's lock naming (certmagic's
// FileStorage lower-cases names and drops most punctuation) keeps locks of
// different entries apart.
func lockName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return "alipay_notify_outbox_" + hex.EncodeToString(sum[:16])
}

// splitEntryKey returns the namespace of an entry key under KeyPrefix, and
// whether key has the shape of one (KeyPrefix/<ns>/<name>.json).
func splitEntryKey(key string) (ns string, ok bool) {
	rest, found := strings.CutPrefix(key, KeyPrefix+"/")
	if !found {
		return "", false
	}
	ns, name, found := strings.Cut(rest, "/")
	if !found || !validNamespace(ns) || strings.Contains(name, "/") ||
		!strings.HasSuffix(name, entrySuffix) || len(name) == len(entrySuffix) {
		return "", false
	}
	return ns, true
}
