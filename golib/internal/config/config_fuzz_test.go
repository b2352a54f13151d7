package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse, seeded with every fixture. Parse
// must not panic and must return either a consistent Config or an *Error
// with at least one well-formed problem, never both and never neither.
func FuzzParse(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.xml"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(""))
	f.Add([]byte("<configuration><runtime><id>a</id><image>i</image><command>c</command></runtime></configuration>"))

	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("fuzz.xml", data)
		if err != nil {
			checkError(t, cfg, err)
			return
		}
		checkConfig(t, cfg)
	})
}

// checkError asserts the invariants of a rejected file.
func checkError(t *testing.T, cfg *Config, err error) {
	t.Helper()
	if cfg != nil {
		t.Fatalf("Parse returned both a config and an error: %v", err)
	}
	cerr, ok := err.(*Error)
	if !ok {
		t.Fatalf("Parse returned %T, want *Error: %v", err, err)
	}
	var target *Error
	if !errors.As(err, &target) || cerr.Path != "fuzz.xml" {
		t.Fatalf("bad *Error %#v", cerr)
	}
	if len(cerr.Problems) == 0 {
		t.Fatal("*Error without problems")
	}
	for _, p := range cerr.Problems {
		if p.Message == "" {
			t.Fatalf("problem without message: %#v", p)
		}
	}
	if msg := cerr.Error(); strings.ContainsAny(msg, "\n\r") {
		t.Fatalf("error message spans lines: %q", msg)
	}
}

// checkConfig asserts the invariants of an accepted file.
func checkConfig(t *testing.T, cfg *Config) {
	t.Helper()
	if cfg == nil {
		t.Fatal("Parse returned neither a config nor an error")
	}
	if cfg.Missing || cfg.Path != "fuzz.xml" {
		t.Fatalf("bad header %q missing=%v", cfg.Path, cfg.Missing)
	}
	if len(cfg.Order) == 0 || len(cfg.Order) != len(cfg.Runtimes) {
		t.Fatalf("order %v does not match %d runtimes", cfg.Order, len(cfg.Runtimes))
	}
	if b := cfg.Backends[DefaultBackendName]; b == nil || b.Name != DefaultBackendName {
		t.Fatalf("default backend missing: %#v", cfg.Backends)
	}
	for name, b := range cfg.Backends {
		if b.Name != name || (b.Type != BackendDocker && b.Type != BackendRemoteDocker) {
			t.Fatalf("bad backend %q: %#v", name, b)
		}
	}
	for _, id := range cfg.Order {
		r := cfg.Runtimes[id]
		switch {
		case r == nil || r.ID != id:
			t.Fatalf("runtime %q missing or misnamed", id)
		case checkRuntimeID(id) != "":
			t.Fatalf("invalid id %q accepted", id)
		case r.Image == "" || r.Command == "":
			t.Fatalf("runtime %q without image or command", id)
		case r.MemoryMB <= 0 || r.CPUShare <= 0:
			t.Fatalf("runtime %q with non-positive limits", id)
		case r.StartTimeout < 1e9 || r.Prewarm < 0 || r.MaxContainers < 0 || r.IdleTimeout < 0:
			t.Fatalf("runtime %q with bad coordinator settings: %#v", id, r)
		case cfg.Backends[r.Backend] == nil:
			t.Fatalf("runtime %q uses undeclared backend %q", id, r.Backend)
		case cfg.Backends[r.Backend].Type == BackendRemoteDocker && !r.EnableNetwork:
			t.Fatalf("runtime %q on a remote backend without network", id)
		case !r.Equal(r):
			t.Fatalf("runtime %q not equal to itself", id)
		}
	}
}
