package testkit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// Vector is one file of testdata/vectors: a real notification signed by
// Alipay (copied from ../shared/vectors/alipay), with its key and verdict.
type Vector struct {
	Name  string `json:"name"`
	Body  string `json:"body"`
	AppID string `json:"app_id"`
	Key   struct {
		AlipayPublicKey string `json:"alipay_public_key"`
	} `json:"key"`
	Expect struct {
		Verified     bool   `json:"verified"`
		ContentRule  string `json:"content_rule"`
		SignType     string `json:"sign_type"`
		StringToSign string `json:"string_to_sign"`
	} `json:"expect"`
}

// LoadVectors loads the RSA2 vectors, genuine and tampered.
func LoadVectors(t testing.TB) []Vector {
	t.Helper()
	files, err := filepath.Glob(Testdata("vectors", "*rsa2*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors: %v", err)
	}
	var vectors []Vector
	for _, f := range files {
		vectors = append(vectors, LoadVector(t, filepath.Base(f)))
	}
	return vectors
}

// LoadVector loads testdata/vectors/<name>.
func LoadVector(t testing.TB, name string) Vector {
	t.Helper()
	var v Vector
	loadJSON(t, Testdata("vectors", name), &v)
	return v
}

// loadJSON decodes the JSON file at path into v.
func loadJSON(t testing.TB, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
}
