package content

import (
	"reflect"
	"testing"
)

var linkVectors = []struct {
	name, text string
	links      []Link
}{
	// The Register payload of lwm2m-client.md and TS 1.1 6.2.1.
	{"Register", `</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>`, []Link{
		{Target: "/", Params: []LinkParam{{Name: "rt", Value: "oma.lwm2m", Quoted: true}, {Name: "ct", Value: "110"}}},
		{Target: "/1/0"}, {Target: "/3/0"},
	}},
	// Leshan's ENCODED_OBJ3442 value: a quoted list of formats, versions.
	{"Register with formats and versions", `</>;rt="oma.lwm2m";ct="60 110 112 1542 1543 11542 11543",</1>;ver=1.1,</1/0>,</2>,</3>;ver=1.1,</3/0>,</3442/0>`, []Link{
		{Target: "/", Params: []LinkParam{{Name: "rt", Value: "oma.lwm2m", Quoted: true}, {Name: "ct", Value: "60 110 112 1542 1543 11542 11543", Quoted: true}}},
		{Target: "/1", Params: []LinkParam{{Name: "ver", Value: "1.1"}}}, {Target: "/1/0"}, {Target: "/2"},
		{Target: "/3", Params: []LinkParam{{Name: "ver", Value: "1.1"}}}, {Target: "/3/0"}, {Target: "/3442/0"},
	}},
	// TS 1.1 5.4.2 Discover: attributes and dim.
	{"Discover", `</3/0>;pmin=10;pmax=60,</3/0/1>,</3/0/2>,</3/0/6>;dim=2,</3/0/7>;dim=2;gt=50;lt=42.2`, []Link{
		{Target: "/3/0", Params: []LinkParam{{Name: "pmin", Value: "10"}, {Name: "pmax", Value: "60"}}},
		{Target: "/3/0/1"}, {Target: "/3/0/2"},
		{Target: "/3/0/6", Params: []LinkParam{{Name: "dim", Value: "2"}}},
		{Target: "/3/0/7", Params: []LinkParam{{Name: "dim", Value: "2"}, {Name: "gt", Value: "50"}, {Name: "lt", Value: "42.2"}}},
	}},
	// Leshan DefaultLinkSerializerTest serialise_with_attributes.
	{"Leshan serialise_with_attributes", `</1/0/1>;number=12,</2/1>;string="stringval",</3>;empty`, []Link{
		{Target: "/1/0/1", Params: []LinkParam{{Name: "number", Value: "12"}}},
		{Target: "/2/1", Params: []LinkParam{{Name: "string", Value: "stringval", Quoted: true}}},
		{Target: "/3", Params: []LinkParam{{Name: "empty"}}},
	}},
	// Leshan DefaultLinkParserTest allow_ptoken.
	{"Leshan allow_ptoken", "</foo>;param=!#$%&'()*+-.:<=>?@[]^_`{|}~a1z9", []Link{
		{Target: "/foo", Params: []LinkParam{{Name: "param", Value: "!#$%&'()*+-.:<=>?@[]^_`{|}~a1z9"}}},
	}},
	// Leshan parse_example_uri_references.
	{"Leshan URI characters", "</-._~a-zA-Z0-9:@!$&'()*+,;=>,</%20>,</uri//>", []Link{
		{Target: "/-._~a-zA-Z0-9:@!$&'()*+,;="}, {Target: "/%20"}, {Target: "/uri//"},
	}},
	{"escaped quote and backslash", `</a>;t="x\"y\\z",</b>;e=""`, []Link{
		{Target: "/a", Params: []LinkParam{{Name: "t", Value: `x"y\z`, Quoted: true}}},
		{Target: "/b", Params: []LinkParam{{Name: "e", Quoted: true}}},
	}},
	{"UTF-8 in a quoted-string", `</a>;title="température"`, []Link{
		{Target: "/a", Params: []LinkParam{{Name: "title", Value: "température", Quoted: true}}},
	}},
	{"empty", "", nil},
}

func TestLinksVectors(t *testing.T) {
	tests := linkVectors
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseLinks([]byte(tt.text))
			wantErr(t, err, nil)
			if !reflect.DeepEqual(got, tt.links) {
				t.Errorf("ParseLinks:\n got  %#v\n want %#v", got, tt.links)
			}
			if b := AppendLinks(nil, tt.links); string(b) != tt.text {
				t.Errorf("AppendLinks:\n got  %s\n want %s", b, tt.text)
			}
		})
	}
}

// TestLinksLeshanEscapes: Leshan's allow_escaped_characters, read as RFC
// 6690 says (a quoted-pair is a backslash and the character it keeps;
// Leshan keeps the backslash of `\\` and `\x`).
func TestLinksLeshanEscapes(t *testing.T) {
	for in, want := range map[string]string{
		`,`: ",", ` \\ `: ` \ `, ` \" \" `: ` " " `, ` \x `: " x ", ` \ą `: " ą ", `;`: ";", `<`: "<", `>`: ">", `=`: "=",
	} {
		links, err := ParseLinks([]byte(`</foo>;param="` + in + `",</bar>`))
		wantErr(t, err, nil)
		if len(links) != 2 || links[1].Target != "/bar" {
			t.Fatalf("%q: links %v", in, links)
		}
		if v, ok := links[0].Param("param"); !ok || v != want {
			t.Errorf("%q: param %q, want %q", in, v, want)
		}
	}
}

func TestLinksAppendQuotes(t *testing.T) {
	links := []Link{{Target: "/1", Params: []LinkParam{{Name: "a", Value: "x y"}, {Name: "b", Value: `q"`}, {Name: "c", Value: "ok"}, {Name: "d"}}}}
	want := `</1>;a="x y";b="q\"";c=ok;d`
	if got := string(AppendLinks([]byte("prefix:"), links)); got != "prefix:"+want {
		t.Errorf("AppendLinks: %s", got)
	}
	back, err := ParseLinks([]byte(want))
	wantErr(t, err, nil)
	if v, _ := back[0].Param("a"); v != "x y" {
		t.Errorf("a = %q", v)
	}
	if _, ok := back[0].Param("z"); ok {
		t.Error("Param of an absent name")
	}
	// Appending to one link's parameters leaves the next link's alone.
	two, _ := ParseLinks([]byte("</a>;x=1,</b>;y=2"))
	_ = append(two[0].Params, LinkParam{Name: "z"})
	if two[1].Params[0].Name != "y" {
		t.Error("links share their parameters' array")
	}
}

func TestLinksErrors(t *testing.T) {
	for _, bad := range []string{
		"/3/0", "<", "</3/0", "</3/0>,", ",</3/0>", "</3/0> ", "</3/0>, </1/0>", "</3 0>", `</3"0>`, "</3/0\x00>",
		"</3/0>;", "</3/0>;=1", "</3/0>;a=", "</3/0>;a=b c", `</3/0>;a="b`, `</3/0>;a="b\`, "</3/0>;a=\"\x01\"",
		"</3/0>;a=\"\xff\"", "</3/0>;a=,", "</3/0>;a*=1", "</3/0>x", "</é>", "</3/0>;a=\"b\"c",
	} {
		if links, err := ParseLinks([]byte(bad)); err == nil {
			t.Errorf("ParseLinks(%q) = %v, want an error", bad, links)
		} else {
			wantErr(t, err, ErrMalformed)
		}
	}
}
