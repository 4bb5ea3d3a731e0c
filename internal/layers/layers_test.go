// Package layers holds the test that keeps tether's architecture honest:
// lower layers never import higher ones (sock ← coap ← download ← lwm2m ←
// cmd), nor do their tests, and inside the socket layer the contract, its
// kit, the sockets and the layers over them stay in that order (sock ←
// sockkit ← netsock, simnet ← tlssock, dtlssock). The test rigs sit below
// everything they serve: internal/testrig on the standard library alone,
// each of its subpackages with the layer it needs, and only tests import
// them.
package layers

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tether-iot/tether/"

// rigs are the test rigs and the layer each sits with: testrig itself
// imports nothing but the standard library (checked apart), sockrig needs
// the socket contract and its suite, coaprig the CoAP layer. A layer's
// tests may use the rigs of its rank or lower.
var rigs = map[string]int{
	"internal/testrig":         0,
	"internal/testrig/sockrig": 0,
	"internal/testrig/coaprig": 1,
}

// rank orders the layers; a package, and its tests, may import only
// packages of its own rank or lower. Test-only helpers such as socktest
// sit with their layer.
func rank(pkg string) int {
	p := strings.TrimPrefix(pkg, module)
	if r, ok := rigs[p]; ok {
		return r
	}
	for i, prefix := range []string{"sock", "coap", "download", "lwm2m", "cmd"} {
		if p == prefix || strings.HasPrefix(p, prefix+"/") {
			return i
		}
	}
	return -1 // internal helpers and anything new: checked by hand
}

// sockRank orders the packages of the socket layer: the contract, the
// implementer's kit (and the conformance suite), the sockets, the layers
// over any socket. A package may import only packages of a lower rank, so
// netsock and simnet never lean on each other, nor tlssock on dtlssock.
var sockRank = map[string]int{
	"sock":                   0,
	"sock/sockkit":           1,
	"sock/socktest":          1,
	"sock/netsock":           2,
	"sock/simnet":            2,
	"sock/internal/seclayer": 2, // what tlssock and dtlssock share
	"sock/tlssock":           3,
	"sock/dtlssock":          3,

	// The socket layer's test rig serves the sockets' tests, so it leans
	// on none of them.
	"internal/testrig/sockrig": 2,
}

func TestLowerLayersNeverImportHigherOnes(t *testing.T) {
	out, err := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports", module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked, rigsSeen := 0, 0
	for {
		var p struct {
			ImportPath                         string
			Imports, TestImports, XTestImports []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		path := strings.TrimPrefix(p.ImportPath, module)
		if _, ok := rigs[path]; ok {
			rigsSeen++
		}
		for _, imp := range p.Imports {
			if _, ok := rigs[strings.TrimPrefix(imp, module)]; ok && !isRig(path) {
				t.Errorf("%s imports %s, a test rig, outside its tests", p.ImportPath, imp)
			}
		}
		if path == "internal/testrig" {
			for _, imp := range p.Imports {
				if first, _, _ := strings.Cut(imp, "/"); strings.Contains(first, ".") {
					t.Errorf("%s imports %s: it imports the standard library only, so that every layer's tests can use it", p.ImportPath, imp)
				}
			}
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
		for _, imp := range append(p.TestImports, p.XTestImports...) {
			if strings.HasPrefix(imp, module) && rank(imp) > r {
				t.Errorf("the tests of %s import %s, a higher layer", p.ImportPath, imp)
			}
		}
		if _, ok := sockRank[path]; ok || strings.HasPrefix(path, "sock") {
			checkSock(t, p.ImportPath, p.Imports)
		}
	}
	if checked == 0 {
		t.Fatal("no package of the module was checked")
	}
	if rigsSeen != len(rigs) {
		t.Errorf("go list found %d of the %d test rigs named in rigs: update the map", rigsSeen, len(rigs))
	}
}

// isRig reports whether path (inside the module) is a test rig, which may
// import the rigs below it.
func isRig(path string) bool {
	_, ok := rigs[path]
	return ok
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

// checkSock checks the order inside the socket layer.
func checkSock(t *testing.T, pkg string, imports []string) {
	t.Helper()
	r, ok := sockRank[strings.TrimPrefix(pkg, module)]
	if !ok {
		t.Errorf("%s is not ranked in sockRank: place it", pkg)
		return
	}
	for _, imp := range imports {
		ir, ok := sockRank[strings.TrimPrefix(imp, module)]
		if ok && ir >= r {
			t.Errorf("%s imports %s, of the same rank or higher in the socket layer", pkg, imp)
		}
	}
}
