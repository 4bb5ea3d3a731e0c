package content

import (
	"strconv"
	"unicode/utf8"
)

// The CoRE link format (RFC 6690), as LwM2M writes it in Register and
// Update payloads (`</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>`), Discover
// answers and Corelnk resources:
//
//	Link       = link-value *( "," link-value )
//	link-value = "<" URI-Reference ">" *( ";" link-param )
//	link-param = parmname [ "=" ( ptoken / quoted-string ) ]
//
// No white space is allowed anywhere.

// Link is one link-value: a target and its parameters, in order.
type Link struct {
	Target string // the URI reference, without the angle brackets
	Params []LinkParam
}

// LinkParam is a link parameter. A parameter with no "=" (";obs") has an
// empty Value and Quoted false; `;x=""` has an empty Value and Quoted
// true. Value is unescaped: `;t="a\"b"` has Value `a"b`.
type LinkParam struct {
	Name, Value string
	Quoted      bool // the value was, or is to be, a quoted-string
}

// Param returns the value of the first parameter named name, and whether
// there is one.
func (l Link) Param(name string) (string, bool) {
	for _, p := range l.Params {
		if p.Name == name {
			return p.Value, true
		}
	}
	return "", false
}

// AppendLinks appends links in the link format to dst:
// `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>`. A value is written as a
// quoted-string when Quoted is set or when it is not a valid ptoken (an
// empty value with Quoted false writes a bare parameter), with `"` and `\`
// escaped. Targets and names are written as they are: links that
// ParseLinks returned, or built from LwM2M paths and attribute names,
// read back the same.
func AppendLinks(dst []byte, links []Link) []byte {
	for i, l := range links {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, '<')
		dst = append(dst, l.Target...)
		dst = append(dst, '>')
		for _, p := range l.Params {
			dst = append(dst, ';')
			dst = append(dst, p.Name...)
			switch {
			case !p.Quoted && p.Value == "":
			case !p.Quoted && isPToken(p.Value):
				dst = append(dst, '=')
				dst = append(dst, p.Value...)
			default:
				dst = append(dst, '=', '"')
				for j := 0; j < len(p.Value); j++ {
					if c := p.Value[j]; c == '"' || c == '\\' {
						dst = append(dst, '\\')
					}
					dst = append(dst, p.Value[j])
				}
				dst = append(dst, '"')
			}
		}
	}
	return dst
}

// ParseLinks parses a link-format payload. An empty payload is no link.
// Targets take the characters of RFC 3986 URI references; parameter
// names those of RFC 5987's parmname; values are ptokens or
// quoted-strings (UTF-8, no control characters). Errors wrap
// ErrMalformed and give the offset.
func ParseLinks(b []byte) ([]Link, error) {
	if len(b) == 0 {
		return nil, nil
	}
	s := linkScanner{s: string(b)}
	// Every link is three bytes at least ("<>,"), every parameter two.
	links := make([]Link, 0, min(s.count(','), len(b)/3)+1)
	params := make([]LinkParam, 0, min(s.count(';'), len(b)/2))
	for {
		l, err := s.link(&params)
		if err != nil {
			return nil, err
		}
		links = append(links, l)
		if s.i == len(s.s) {
			return links, nil
		}
		if s.s[s.i] != ',' {
			return nil, s.errorf("expected ',' or the end")
		}
		s.i++
	}
}

// checkLinks checks that b is in the link format (a Corelnk value).
func checkLinks(b []byte) error {
	s := linkScanner{s: string(b)}
	if len(b) == 0 {
		return nil
	}
	var params []LinkParam
	for {
		params = params[:0]
		if _, err := s.link(&params); err != nil {
			return err
		}
		if s.i == len(s.s) {
			return nil
		}
		if s.s[s.i] != ',' {
			return s.errorf("expected ',' or the end")
		}
		s.i++
	}
}

type linkScanner struct {
	s string
	i int
}

func (s *linkScanner) errorf(what string) error {
	return errorf(ErrMalformed, "link format at byte %d: %s", s.i, what)
}

func (s *linkScanner) count(c byte) int {
	n := 0
	for i := 0; i < len(s.s); i++ {
		if s.s[i] == c {
			n++
		}
	}
	return n
}

// link reads one link-value; its parameters are appended to *params,
// and the link's Params is a full slice of what it appended (so that a
// caller's append to it never writes into the next link's).
func (s *linkScanner) link(params *[]LinkParam) (Link, error) {
	if s.i >= len(s.s) || s.s[s.i] != '<' {
		return Link{}, s.errorf("expected '<'")
	}
	s.i++
	start := s.i
	for s.i < len(s.s) && s.s[s.i] != '>' {
		if !isURIChar(s.s[s.i]) {
			return Link{}, s.errorf("character " + strconv.QuoteRune(rune(s.s[s.i])) + " in a URI reference")
		}
		s.i++
	}
	if s.i == len(s.s) {
		return Link{}, s.errorf("expected '>'")
	}
	l := Link{Target: s.s[start:s.i]}
	s.i++
	first := len(*params)
	for s.i < len(s.s) && s.s[s.i] == ';' {
		s.i++
		p, err := s.param()
		if err != nil {
			return Link{}, err
		}
		*params = append(*params, p)
	}
	if n := len(*params); n > first {
		l.Params = (*params)[first:n:n]
	}
	return l, nil
}

func (s *linkScanner) param() (LinkParam, error) {
	start := s.i
	for s.i < len(s.s) && isParmnameChar(s.s[s.i]) {
		s.i++
	}
	if s.i == start {
		return LinkParam{}, s.errorf("expected a parameter name")
	}
	p := LinkParam{Name: s.s[start:s.i]}
	if s.i == len(s.s) || s.s[s.i] != '=' {
		return p, nil
	}
	s.i++
	if s.i < len(s.s) && s.s[s.i] == '"' {
		v, err := s.quoted()
		p.Value, p.Quoted = v, true
		return p, err
	}
	start = s.i
	for s.i < len(s.s) && isPTokenChar(s.s[s.i]) {
		s.i++
	}
	if s.i == start {
		return LinkParam{}, s.errorf("expected a value after '='")
	}
	p.Value = s.s[start:s.i]
	return p, nil
}

// quoted reads a quoted-string and returns it unescaped.
func (s *linkScanner) quoted() (string, error) {
	s.i++ // the opening quote
	start := s.i
	escaped := false
	for {
		if s.i >= len(s.s) {
			return "", s.errorf("unterminated quoted-string")
		}
		switch c := s.s[s.i]; {
		case c == '"':
			v := s.s[start:s.i]
			s.i++
			if !utf8.ValidString(v) {
				return "", s.errorf("a quoted-string that is not UTF-8")
			}
			if escaped {
				v = unquote(v)
			}
			return v, nil
		case c == '\\':
			escaped = true
			s.i++
			if s.i >= len(s.s) {
				return "", s.errorf("unterminated quoted-string")
			}
			if s.s[s.i] < 0x20 || s.s[s.i] == 0x7F {
				return "", s.errorf("a control character in a quoted-string")
			}
			s.i++
		case c < 0x20 || c == 0x7F:
			return "", s.errorf("a control character in a quoted-string")
		default:
			s.i++
		}
	}
}

// unquote drops the backslash of every quoted-pair.
func unquote(v string) string {
	b := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' {
			i++
		}
		b = append(b, v[i])
	}
	return string(b)
}

// isURIChar: the unreserved, reserved and percent characters of RFC 3986.
func isURIChar(c byte) bool {
	return isAlnum(c) || c < 0x80 && contains("-._~:/?#[]@!$&'()*+,;=%", c)
}

// isParmnameChar: RFC 5987 attr-char without "*", "'" and "%".
func isParmnameChar(c byte) bool {
	return isAlnum(c) || c < 0x80 && contains("!#$&+-.^_`|~", c)
}

// isPTokenChar: RFC 6690's ptokenchar.
func isPTokenChar(c byte) bool {
	return isAlnum(c) || c < 0x80 && contains("!#$%&'()*+-./:<=>?@[]^_`{|}~", c)
}

func isPToken(v string) bool {
	for i := 0; i < len(v); i++ {
		if !isPTokenChar(v[i]) {
			return false
		}
	}
	return v != ""
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func contains(set string, c byte) bool {
	for i := 0; i < len(set); i++ {
		if set[i] == c {
			return true
		}
	}
	return false
}
