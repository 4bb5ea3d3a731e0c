package content

import (
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"testing"
)

// res names a resource of an object: the key of a test model.
type res struct{ o, r uint16 }

// model is a TypeOf over a table of object and resource ids.
func model(types map[res]Type) TypeOf {
	return func(p Path) (Type, bool) {
		t, ok := types[res{p.Object(), p.Resource()}]
		return t, ok
	}
}

// testModel holds the objects of the vectors: the registry's Server (1),
// Access Control (2), Device (3), Firmware Update (5) and Location (6);
// the TS's examples 65, 66 and 67 (TS 1.0 6.4.3.3, TS 1.1 Table 7.4.4-4)
// and 3311, 3308 (Table 7.4.4-8); Leshan's Security resources 3 and 16
// and its test object 3442; Wakaama's test object 12; and 1024, with one
// resource of every type.
var testModel = model(map[res]Type{
	{0, 3}: Opaque, {0, 16}: UnsignedInteger,
	{1, 0}: Integer, {1, 1}: Integer, {1, 2}: Integer, {1, 3}: Integer, {1, 4}: TypeNone,
	{1, 5}: Integer, {1, 6}: Boolean, {1, 7}: String, {1, 8}: TypeNone,
	{2, 0}: Integer, {2, 1}: Integer, {2, 2}: Integer, {2, 3}: Integer,
	{3, 0}: String, {3, 1}: String, {3, 2}: String, {3, 3}: String, {3, 4}: TypeNone,
	{3, 5}: TypeNone, {3, 6}: Integer, {3, 7}: Integer, {3, 8}: Integer, {3, 9}: Integer,
	{3, 10}: Integer, {3, 11}: Integer, {3, 12}: TypeNone, {3, 13}: Time, {3, 14}: String,
	{3, 15}: String, {3, 16}: String, {3, 17}: String, {3, 18}: String, {3, 19}: String,
	{3, 20}: Integer, {3, 21}: Integer, {3, 22}: ObjectLink,
	{5, 0}: Opaque, {5, 1}: String, {5, 2}: TypeNone, {5, 3}: Integer,
	{6, 0}: Float, {6, 1}: Float, {6, 3}: Float,
	{12, 1}: Integer, {12, 2}: Float, {12, 3}: Float,
	{65, 0}: ObjectLink, {65, 1}: String, {65, 2}: Integer,
	{66, 0}: String, {66, 1}: String, {66, 2}: ObjectLink,
	{67, 0}: String, {67, 1}: String,
	{72, 2}:      Float,
	{3308, 5900}: Float, {3311, 5850}: Boolean, {3311, 5851}: Integer,
	{3442, 180}: CoreLink,
	{1024, 0}:   String, {1024, 1}: Integer, {1024, 2}: UnsignedInteger, {1024, 3}: Float,
	{1024, 4}: Boolean, {1024, 5}: Opaque, {1024, 6}: Time, {1024, 7}: ObjectLink,
	{1024, 8}: CoreLink, {1024, 9}: TypeNone, {1024, 10}: Integer,
})

// unhex decodes hex with spaces, as the TS prints TLV.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rec(p string, v Value) Record {
	path, err := ParsePath(p)
	if err != nil {
		panic(err)
	}
	return Record{path, v}
}

// deviceRecords is the Device instance of the TS's examples (TS 1.0
// 6.4.3.1, TS 1.1 Table 7.4.4-2): /3/0 as the example client has it.
func deviceRecords() []Record {
	return []Record{
		rec("/3/0/0", StringValue("Open Mobile Alliance")),
		rec("/3/0/1", StringValue("Lightweight M2M Client")),
		rec("/3/0/2", StringValue("345000123")),
		rec("/3/0/3", StringValue("1.0")),
		rec("/3/0/6/0", IntValue(1)),
		rec("/3/0/6/1", IntValue(5)),
		rec("/3/0/7/0", IntValue(3800)),
		rec("/3/0/7/1", IntValue(5000)),
		rec("/3/0/8/0", IntValue(125)),
		rec("/3/0/8/1", IntValue(900)),
		rec("/3/0/9", IntValue(100)),
		rec("/3/0/10", IntValue(15)),
		rec("/3/0/11/0", IntValue(0)),
		rec("/3/0/13", Value{Type: Time, Int: 1367491215}),
		rec("/3/0/14", StringValue("+02:00")),
		rec("/3/0/16", StringValue("U")),
	}
}

// sameRecords reports whether a and b hold equal records, in any order.
func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	sort := func(r []Record) []Record {
		r = slices.Clone(r)
		slices.SortStableFunc(r, func(x, y Record) int { return x.Path.Compare(y.Path) })
		return r
	}
	a, b = sort(a), sort(b)
	for i := range a {
		if a[i].Path != b[i].Path || !a[i].Value.Equal(b[i].Value) {
			return false
		}
	}
	return true
}

func checkRecords(t *testing.T, got, want []Record) {
	t.Helper()
	if !sameRecords(got, want) {
		t.Errorf("records:\n got  %v\n want %v", got, want)
	}
}

// wantErr checks that err wraps sentinel (nil: no error).
func wantErr(t *testing.T, err, sentinel error) {
	t.Helper()
	switch {
	case sentinel == nil && err != nil:
		t.Fatalf("unexpected error: %v", err)
	case sentinel != nil && !errors.Is(err, sentinel):
		t.Fatalf("error %v, want one wrapping %v", err, sentinel)
	}
}
