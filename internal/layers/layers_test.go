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
	"sock":          0,
	"sock/sockkit":  1,
	"sock/socktest": 1,
	"sock/netsock":  2,
	"sock/simnet":   2,
	"sock/tlssock":  3,
	"sock/dtlssock": 3,
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
		if r == 0 {
			checkSock(t, p.ImportPath, p.Imports)
		}
	}
	if checked == 0 {
		t.Fatal("no package of the module was checked")
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
