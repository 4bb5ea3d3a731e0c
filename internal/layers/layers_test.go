// Package layers holds the test that keeps tether's architecture honest:
// lower layers never import higher ones (sock ← coap ← download ← lwm2m ←
// cmd), and inside the socket layer the contract, its kit, the sockets and
// the layers over them stay in that order (sock ← sockkit ← netsock, simnet
// ← tlssock, dtlssock).
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
		if r == 0 && strings.HasPrefix(p.ImportPath, module+"sock") {
			checkSock(t, p.ImportPath, p.Imports)
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
