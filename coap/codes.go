package coap

import "fmt"

// codeNames are the names the CoAP registries give the codes (RFC 7252
// 12.1, RFC 7959, RFC 8132, RFC 8323, RFC 8516, RFC 8768).
var codeNames = map[Code]string{
	0x00: "Empty",
	0x01: "GET", 0x02: "POST", 0x03: "PUT", 0x04: "DELETE", 0x05: "FETCH", 0x06: "PATCH", 0x07: "iPATCH",
	0x41: "Created", 0x42: "Deleted", 0x43: "Valid", 0x44: "Changed", 0x45: "Content", 0x5f: "Continue",
	0x80: "Bad Request", 0x81: "Unauthorized", 0x82: "Bad Option", 0x83: "Forbidden", 0x84: "Not Found",
	0x85: "Method Not Allowed", 0x86: "Not Acceptable", 0x88: "Request Entity Incomplete", 0x89: "Conflict",
	0x8c: "Precondition Failed", 0x8d: "Request Entity Too Large", 0x8f: "Unsupported Content-Format",
	0x96: "Unprocessable Entity", 0x9d: "Too Many Requests",
	0xa0: "Internal Server Error", 0xa1: "Not Implemented", 0xa2: "Bad Gateway", 0xa3: "Service Unavailable",
	0xa4: "Gateway Timeout", 0xa5: "Proxying Not Supported", 0xa8: "Hop Limit Reached",
	0xe1: "CSM", 0xe2: "Ping", 0xe3: "Pong", 0xe4: "Release", 0xe5: "Abort",
}

// CodeString formats a code as CoAP writes it, class and detail, with its
// registered name: "4.04 Not Found", "2.05 Content"; an unregistered code
// is its number alone ("4.31").
func CodeString(c Code) string {
	num := fmt.Sprintf("%d.%02d", c>>5, c&31)
	if name, ok := codeNames[c]; ok {
		return num + " " + name
	}
	return num
}

// TypeString names a message type as traces write it: "CON", "NON",
// "ACK" or "RST" ("?" for anything else).
func TypeString(t Type) string {
	switch t {
	case Confirmable:
		return "CON"
	case NonConfirmable:
		return "NON"
	case Acknowledgement:
		return "ACK"
	case Reset:
		return "RST"
	}
	return "?"
}
