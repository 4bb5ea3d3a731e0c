package coap

import (
	"mime"
	"path"
	"strings"

	"github.com/plgd-dev/go-coap/v3/message"
)

// ContentFormatFor returns the Content-Format for a file name, from its
// extension: the registered CoAP formats for text, link-format, XML, JSON,
// CBOR and EXI, application/octet-stream for anything else.
func ContentFormatFor(name string) MediaType {
	ext := strings.ToLower(path.Ext(name))
	switch ext {
	case ".txt", ".text", ".log":
		return message.TextPlain
	case ".wlnk":
		return message.AppLinkFormat
	case ".json":
		return message.AppJSON
	case ".cbor":
		return message.AppCBOR
	case ".exi":
		return message.AppExi
	case ".xml":
		return message.AppXML
	}
	t := mime.TypeByExtension(ext)
	switch {
	case strings.HasPrefix(t, "text/plain"):
		return message.TextPlain
	case strings.HasSuffix(t, "/json"):
		return message.AppJSON
	case strings.HasSuffix(t, "/xml"):
		return message.AppXML
	}
	return message.AppOctets
}
