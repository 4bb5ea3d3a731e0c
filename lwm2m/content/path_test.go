package content

import (
	"slices"
	"testing"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		in, out string
		len     int
	}{
		{"", "/", 0},
		{"/", "/", 0},
		{"/3", "/3", 1},
		{"/3/0", "/3/0", 2},
		{"/3/0/1", "/3/0/1", 3},
		{"/3/0/6/1", "/3/0/6/1", 4},
		{"3/0/1", "/3/0/1", 3},
		{"/3/0/", "/3/0", 2},
		{"3/", "/3", 1},
		{"/65534/65534/65534/65534", "/65534/65534/65534/65534", 4},
		{"/67/0/00", "/67/0/0", 3}, // Wakaama's senml tests write it
		{"/0000000000003", "/3", 1},
		{"/1/2/3/4/", "/1/2/3/4", 4},
	}
	for _, tt := range tests {
		p, err := ParsePath(tt.in)
		wantErr(t, err, nil)
		if p.String() != tt.out || p.Len() != tt.len {
			t.Errorf("ParsePath(%q) = %v (%d ids), want %s (%d)", tt.in, p, p.Len(), tt.out, tt.len)
		}
	}
	for _, bad := range []string{"//", "/3//0", "//3", "/3/0//", "/a", "/3/-1", "/+3", "/3 ", " /3", "/65535", "/3/65536",
		"/99999999999999999999", "/1/2/3/4/5", "/3/0x1", "\x00", "/３"} {
		if p, err := ParsePath(bad); err == nil {
			t.Errorf("ParsePath(%q) = %v, want an error", bad, p)
		} else {
			wantErr(t, err, ErrBadPath)
		}
	}
}

func TestPath(t *testing.T) {
	p := ResourceInstancePath(3, 0, 6, 1)
	if p.Object() != 3 || p.Instance() != 0 || p.Resource() != 6 || p.ResourceInstance() != 1 {
		t.Errorf("ids of %v", p)
	}
	if q := InstancePath(3, 0); q.Resource() != NoID || q.ResourceInstance() != NoID || q.ID(-1) != NoID || q.ID(4) != NoID {
		t.Errorf("absent ids of %v are not NoID", q)
	}
	if (Path{}).Object() != NoID {
		t.Error("the root has an object")
	}
	// Parent and Append walk the tree and give comparable values.
	if p.Parent() != ResourcePath(3, 0, 6) || p.Parent().Parent().Parent().Parent() != (Path{}) || (Path{}).Parent() != (Path{}) {
		t.Errorf("Parent of %v", p)
	}
	if ObjectPath(3).Append(0).Append(6).Append(1) != p {
		t.Error("Append")
	}
	m := map[Path]int{ResourcePath(3, 0, 6): 1}
	if m[p.Parent()] != 1 {
		t.Error("a parent is not the same map key")
	}
	// Contains.
	for _, c := range []struct {
		a, b Path
		want bool
	}{
		{Path{}, p, true}, {ObjectPath(3), p, true}, {p, p, true}, {p, ObjectPath(3), false},
		{InstancePath(3, 1), p, false}, {ObjectPath(4), InstancePath(3, 0), false}, {p, Path{}, false},
	} {
		if c.a.Contains(c.b) != c.want {
			t.Errorf("%v.Contains(%v) = %v", c.a, c.b, !c.want)
		}
	}
	// Compare orders depth-first.
	paths := []Path{ResourcePath(3, 0, 10), ResourceInstancePath(3, 0, 6, 1), ObjectPath(3), {}, ResourcePath(3, 0, 6), InstancePath(1, 0), ResourceInstancePath(3, 0, 6, 0)}
	slices.SortFunc(paths, Path.Compare)
	var got []string
	for _, q := range paths {
		got = append(got, q.String())
	}
	if want := []string{"/", "/1/0", "/3", "/3/0/6", "/3/0/6/0", "/3/0/6/1", "/3/0/10"}; !slices.Equal(got, want) {
		t.Errorf("sorted: %v, want %v", got, want)
	}
	defer func() {
		if recover() == nil {
			t.Error("Append to a resource-instance path did not panic")
		}
	}()
	p.Append(0)
}
