package rsaverify

import (
	"crypto"
	"testing"
)

// fuzzSpecs are the keys the fuzz target picks from with keyIndex: the
// main ones, and the small ones at the edges of the padding's length rule
// (accepted with rsa1024min=0, which the target sets).
var fuzzSpecs = append(append([]keySpec(nil), mainSpecs...), smallSpecs...)

// FuzzVerifyAgreesWithCryptoRSA checks that this package's verdict equals
// rsa.VerifyPKCS1v15's on fuzzer-made inputs. mode chooses how the
// signature is made, so that the search also reaches signatures that
// exponentiate to near-valid encodings, which random bytes never do:
//
//	0: sig as given (any length, any value);
//	1: a valid signature of the digest, byte pos XORed with x;
//	2: the valid encoding of the digest with sig's bytes copied in at
//	   pos and byte pos XORed with x, signed with the private key;
//	3: sig's bytes as the whole encoding (cut or zero-extended to the
//	   key's size), signed with the private key.
//
// In modes 1 to 3 the digest signed is the fuzzer's digest when it has the
// hash's size, else its hash. Each input is checked against that digest,
// the fuzzer's digest as given, and the same bytes under the other hash,
// with one Recover, as the domestic path tries two digests.
//
//	go test -run '^$' -fuzz '^FuzzVerifyAgreesWithCryptoRSA$' -fuzztime 10m ./internal/rsaverify
func FuzzVerifyAgreesWithCryptoRSA(f *testing.F) {
	f.Setenv("GODEBUG", "rsa1024min=0")
	keys := make([]*testKey, len(fuzzSpecs))
	for i, s := range fuzzSpecs {
		keys[i] = key(f, s)
	}
	for i, tk := range keys {
		for sel, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
			digest := hashOf(h, []byte("seed "+tk.name))
			sig, _ := signEM(tk, encode(tk.size, h, digest))
			f.Add(uint8(i), uint8(sel), digest, uint8(0), sig, uint16(0), byte(0))
			if i == 4 { // 2048-e65537: a seed for every mode
				f.Add(uint8(i), uint8(sel), digest, uint8(1), []byte(nil), uint16(7), byte(0x10))
				f.Add(uint8(i), uint8(sel), digest, uint8(2), []byte{0x00, 0x01}, uint16(200), byte(0))
				f.Add(uint8(i), uint8(sel), digest, uint8(3), encode(tk.size, h, digest), uint16(0), byte(0))
			}
		}
	}
	f.Fuzz(func(t *testing.T, keyIndex uint8, hashSel uint8, digest []byte, mode uint8, sig []byte, pos uint16, x byte) {
		tk := keys[int(keyIndex)%len(keys)]
		pk := prepared(t, tk)
		k := tk.size
		h, other := crypto.SHA256, crypto.SHA1
		if hashSel&1 == 1 {
			h, other = other, h
		}
		signed := digest
		if len(signed) != h.Size() {
			signed = hashOf(h, digest)
		}
		p := int(pos) % k
		switch mode % 4 {
		case 1:
			if s, ok := signEM(tk, encode(k, h, signed)); ok {
				s[p] ^= x
				sig = s
			}
		case 2:
			if em := encode(k, h, signed); em != nil {
				copy(em[p:], sig)
				em[p] ^= x
				if s, ok := signEM(tk, em); ok {
					sig = s
				}
			}
		case 3:
			em := make([]byte, k)
			copy(em[max(0, k-len(sig)):], sig[max(0, len(sig)-k):])
			if s, ok := signEM(tk, em); ok {
				sig = s
			}
		}
		agree(t, tk, pk, "fuzz", sig, true,
			pair{h, signed}, pair{h, digest}, pair{other, digest}, pair{other, signed[:min(len(signed), other.Size())]})
	})
}
