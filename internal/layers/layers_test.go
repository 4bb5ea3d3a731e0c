// Package layers holds the test that keeps tether's architecture honest:
// lower layers never import higher ones (sock ← coap ← download ← lwm2m ←
// cmd).
package layers

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tether-iot/tether/"

// rank orders the layers; a package may import only packages of its own
// rank or lower. Test-only helpers such as socktest sit with their layer.
func rank(pkg string) int {
	p := strings.TrimPrefix(pkg, module)
	if p == "internal/testrig" {
		return 0 // fixtures for every layer's tests: they import none
	}
	for i, prefix := range []string{"sock", "coap", "download", "lwm2m", "cmd"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return i
		}
	}
	return -1 // internal helpers and anything new: checked by hand
}

func TestLowerLayersNeverImportHigherOnes(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		r := rank(p.ImportPath)
		if r < 0 {
			continue
		}
		checked++
		for _, imp := range p.Imports {
			if strings.HasPrefix(imp, module) && rank(imp) > r {
				t.Errorf("%s imports %s, a higher layer", p.ImportPath, imp)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package of the module was checked")
	}
}

// TestDownloadLinksNoDTLS: package download takes coaps support from the
// program (download.Options.DTLS, a *dtlssock.Config), so a program that
// downloads over UDP, TCP or HTTP only does not link pion's DTLS. What a
// package depends on bounds what a program that imports it can link.
func TestDownloadLinksNoDTLS(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"download").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list listed no dependency")
	}
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/pion/") || dep == module+"sock/dtlssock" {
			t.Errorf("package download depends on %s", dep)
		}
	}
}
