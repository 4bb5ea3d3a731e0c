package lwm2m

import (
	"cmp"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite the README's tables of the client's machines from the code")

// readmeTables are the README's tables of the two machines, as the code's
// tables give them.
func readmeTables() (reg, fw string) {
	var b strings.Builder
	for s := Registering; int(s) < len(regTransitions); s++ {
		var to []string
		for _, t := range regTransitions[s] {
			to = append(to, t.String())
		}
		if len(to) == 0 {
			to = []string{"(none: Run has returned)"}
		}
		fmt.Fprintf(&b, "| %v | %s |\n", s, strings.Join(to, ", "))
	}
	reg = strings.TrimSuffix(b.String(), "\n")
	b.Reset()
	keys := make([]fwKey, 0, len(fwMoves))
	for k := range fwMoves {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b fwKey) int {
		return cmp.Or(cmp.Compare(a.from, b.from), cmp.Compare(a.on, b.on))
	})
	for _, k := range keys {
		fmt.Fprintf(&b, "| %v (%d) | %v | %v (%d) |\n", k.from, k.from, k.on, fwMoves[k], fwMoves[k])
	}
	fw = strings.TrimSuffix(b.String(), "\n")
	return reg, fw
}

// replaceTable puts rows under the header that follows marker in doc.
func replaceTable(doc, marker, rows string) (string, bool) {
	i := strings.Index(doc, marker)
	if i < 0 {
		return doc, false
	}
	// The marker line, the header and its rule stay.
	start := i
	for range 3 {
		j := strings.Index(doc[start:], "\n")
		if j < 0 {
			return doc, false
		}
		start += j + 1
	}
	end := strings.Index(doc[start:], "<!-- end -->")
	if end < 0 {
		return doc, false
	}
	return doc[:start] + rows + "\n" + doc[start+end:], true
}

// TestREADMEDrawsTheMachines: the README's tables of the registration's
// and /5's moves are the code's (go test -run TestREADMEDrawsTheMachines
// ./lwm2m -update-readme rewrites them).
func TestREADMEDrawsTheMachines(t *testing.T) {
	const path = "../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	reg, fw := readmeTables()
	doc, ok1 := replaceTable(string(b), "<!-- registration table:", reg)
	doc, ok2 := replaceTable(doc, "<!-- firmware table:", fw)
	if !ok1 || !ok2 {
		t.Fatal("the README has lost the markers of the machines' tables")
	}
	if doc == string(b) {
		return
	}
	if *updateREADME {
		if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Errorf("the README's tables of the machines are not the code's; run go test -run TestREADMEDrawsTheMachines ./lwm2m -update-readme")
}
