package content_test

import (
	"fmt"

	"github.com/tether-iot/tether/lwm2m/content"
)

// A Read of the Device instance /3/0 answered in SenML JSON: the records
// under /3/0, one per resource value (resources 6 and 7 are multiple
// resources, one record per instance).
func ExampleEncode() {
	rec := func(p string, v content.Value) content.Record {
		path, err := content.ParsePath(p)
		if err != nil {
			panic(err)
		}
		return content.Record{Path: path, Value: v}
	}
	recs := []content.Record{
		rec("/3/0/0", content.StringValue("Open Mobile Alliance")),
		rec("/3/0/1", content.StringValue("Lightweight M2M Client")),
		rec("/3/0/6/0", content.IntValue(1)),
		rec("/3/0/6/1", content.IntValue(5)),
		rec("/3/0/9", content.IntValue(100)),
		rec("/3/0/13", content.Value{Type: content.Time, Int: 1367491215}),
		rec("/3/0/16", content.StringValue("U")),
	}
	payload, err := content.Encode(content.SenMLJSON, content.InstancePath(3, 0), recs)
	if err != nil {
		panic(err)
	}
	fmt.Println(string(payload))
	// Output:
	// [{"bn":"/3/0/","n":"0","vs":"Open Mobile Alliance"},{"n":"1","vs":"Lightweight M2M Client"},{"n":"6/0","v":1},{"n":"6/1","v":5},{"n":"9","v":100},{"n":"13","v":1367491215},{"n":"16","vs":"U"}]
}

// A Register payload read back: the objects a client has, and the
// parameters of the root link.
func ExampleParseLinks() {
	links, err := content.ParseLinks([]byte(`</>;rt="oma.lwm2m";ct=110,</1/0>,</3/0>,</5>;ver=1.1`))
	if err != nil {
		panic(err)
	}
	for _, l := range links {
		fmt.Println(l.Target, l.Params)
	}
	ct, _ := links[0].Param("ct")
	fmt.Println("content format:", ct)
	// Output:
	// / [{rt oma.lwm2m true} {ct 110 false}]
	// /1/0 []
	// /3/0 []
	// /5 [{ver 1.1 false}]
	// content format: 110
}

// Decoding a Write to /3/0 needs the types of the resources: a TypeOf
// from the object definitions.
func ExampleDecode() {
	device := map[uint16]content.Type{0: content.String, 9: content.Integer, 13: content.Time, 14: content.String}
	typeOf := func(p content.Path) (content.Type, bool) {
		if p.Object() != 3 {
			return content.TypeNone, false
		}
		t, ok := device[p.Resource()]
		return t, ok
	}
	payload := []byte(`[{"bn":"/3/0/","n":"13","v":1.7e9},{"n":"14","vs":"+01:00"}]`)
	recs, err := content.Decode(content.SenMLJSON, content.InstancePath(3, 0), payload, typeOf)
	if err != nil {
		panic(err)
	}
	for _, r := range recs {
		fmt.Println(r.Path, r.Value.Type, r.Value.Text())
	}
	_, err = content.Decode(content.SenMLJSON, content.InstancePath(3, 0), []byte(`[{"bn":"/3/0/9","vs":"full"}]`), typeOf)
	fmt.Println(err)
	// Output:
	// /3/0/13 Time 1700000000
	// /3/0/14 String +01:00
	// lwm2m: malformed payload: /3/0/9: "vs" for a resource of type Integer
}
