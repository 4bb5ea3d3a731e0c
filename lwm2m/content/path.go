package content

import (
	"fmt"
	"strconv"
)

// NoID is the identifier the TS reserves (65535, MAX_ID): no object,
// instance, resource or resource instance has it. [Path.ID] and its
// helpers return it for a level the path does not have. An [ObjLink] may
// hold it: 65535:65535 is the null object link.
const NoID uint16 = 65535

// Path is an LwM2M path: the root ("/"), an object (/O), an object
// instance (/O/I), a resource (/O/I/R) or a resource instance
// (/O/I/R/RI). The zero value is the root. Paths are comparable and can
// be map keys. The constructors do not check their ids; [ParsePath] and
// every decoder reject [NoID], and [Encode] rejects records whose paths
// hold it.
type Path struct {
	ids [4]uint16
	n   uint8
}

// ObjectPath returns /o.
func ObjectPath(o uint16) Path { return Path{ids: [4]uint16{o}, n: 1} }

// InstancePath returns /o/i.
func InstancePath(o, i uint16) Path { return Path{ids: [4]uint16{o, i}, n: 2} }

// ResourcePath returns /o/i/r.
func ResourcePath(o, i, r uint16) Path { return Path{ids: [4]uint16{o, i, r}, n: 3} }

// ResourceInstancePath returns /o/i/r/ri.
func ResourceInstancePath(o, i, r, ri uint16) Path {
	return Path{ids: [4]uint16{o, i, r, ri}, n: 4}
}

// ParsePath parses a path written as in CoAP URIs and SenML names. The
// leading slash is optional ("/3/0/1" and "3/0/1" are the same path), a
// single trailing slash is tolerated ("/3/0/" is /3/0), and "" and "/" are
// the root. Each id is decimal digits only (no sign, no spaces; leading
// zeros are accepted, as Wakaama does) with a value from 0 to 65534;
// 65535 is reserved. Empty segments ("/3//0"), more than four ids and
// anything else are errors that wrap [ErrBadPath].
func ParsePath(s string) (Path, error) { return parsePath(s) }

func parsePath[S ~string | ~[]byte](s S) (Path, error) {
	var p Path
	i := 0
	if len(s) > 0 && s[0] == '/' {
		i = 1
	}
	for i < len(s) {
		start := i
		v := 0
		for ; i < len(s) && s[i] != '/'; i++ {
			c := s[i]
			if c < '0' || c > '9' {
				return Path{}, fmt.Errorf("%w: %q: id with %q", ErrBadPath, s, rune(c))
			}
			if v = v*10 + int(c-'0'); v > int(NoID) {
				return Path{}, fmt.Errorf("%w: %q: id over 65534", ErrBadPath, s)
			}
		}
		switch {
		case i == start:
			return Path{}, fmt.Errorf("%w: %q: empty segment", ErrBadPath, s)
		case v == int(NoID):
			return Path{}, fmt.Errorf("%w: %q: id 65535 is reserved", ErrBadPath, s)
		case p.n == 4:
			return Path{}, fmt.Errorf("%w: %q: more than four ids", ErrBadPath, s)
		}
		p.ids[p.n] = uint16(v)
		p.n++
		i++ // the slash, or past the end
	}
	return p, nil
}

// Len is the number of ids: 0 for the root, 4 for a resource instance.
func (p Path) Len() int { return int(p.n) }

// ID is the id at level (0 object, 1 instance, 2 resource, 3 resource
// instance), or [NoID] when the path has no such level.
func (p Path) ID(level int) uint16 {
	if level < 0 || level >= int(p.n) {
		return NoID
	}
	return p.ids[level]
}

// Object is ID(0): [NoID] for the root.
func (p Path) Object() uint16 { return p.ID(0) }

// Instance is ID(1): [NoID] when the path is shorter.
func (p Path) Instance() uint16 { return p.ID(1) }

// Resource is ID(2): [NoID] when the path is shorter.
func (p Path) Resource() uint16 { return p.ID(2) }

// ResourceInstance is ID(3): [NoID] when the path is shorter.
func (p Path) ResourceInstance() uint16 { return p.ID(3) }

// Append returns the path one level down, p/id. It panics when p is
// already a resource-instance path: a fifth level is a bug in the caller,
// as an index out of range is.
func (p Path) Append(id uint16) Path {
	if p.n >= 4 {
		appendPanic(p)
	}
	p.ids[p.n&3] = id
	p.n++
	return p
}

// appendPanic is Append's panic, out of line so that Append inlines.
func appendPanic(p Path) {
	panic("content: Append to a resource-instance path " + p.String())
}

// Parent returns the path one level up; the root's parent is the root.
func (p Path) Parent() Path {
	if p.n > 0 {
		p.n--
		p.ids[p.n] = 0
	}
	return p
}

// Contains reports whether q is p or lies under it: the root contains
// every path, /3/0 contains /3/0 and /3/0/1 but not /3 or /3/1.
func (p Path) Contains(q Path) bool {
	if p.n > q.n {
		return false
	}
	for i := range p.n {
		if p.ids[i] != q.ids[i] {
			return false
		}
	}
	return true
}

// Compare orders paths as a depth-first walk of the tree does: by ids,
// level by level, a path before the paths under it. It returns -1, 0 or
// +1, for slices.SortFunc.
func (p Path) Compare(q Path) int {
	n := min(p.n, q.n)
	for i := range n {
		if p.ids[i] != q.ids[i] {
			if p.ids[i] < q.ids[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case p.n < q.n:
		return -1
	case p.n > q.n:
		return 1
	}
	return 0
}

// String writes the path as "/3/0/1"; the root is "/".
func (p Path) String() string {
	if p.n == 0 {
		return "/"
	}
	var buf [4 * 6]byte
	return string(p.appendTo(buf[:0]))
}

// appendTo appends "/3/0/1", and nothing for the root.
func (p Path) appendTo(b []byte) []byte {
	for i := range p.n {
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(p.ids[i]), 10)
	}
	return b
}

// prefix returns the first n levels of p (n <= p.Len()).
func (p Path) prefix(n int) Path {
	for p.Len() > n {
		p = p.Parent()
	}
	return p
}

// valid reports whether no id is the reserved NoID.
func (p Path) valid() bool {
	for i := range p.n {
		if p.ids[i] == NoID {
			return false
		}
	}
	return true
}

// onBranch reports whether p and q lie on one branch of the tree: one
// contains the other.
func onBranch(p, q Path) bool { return p.Contains(q) || q.Contains(p) }
