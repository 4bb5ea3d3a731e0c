package simnet_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/tether-iot/tether/sock/simnet"
	"github.com/tether-iot/tether/sock/socktest"
)

func Example() {
	n := simnet.New(1)
	srv := n.AddHost("server", "10.0.0.1")
	dev := n.AddHost("device", "10.0.0.2")
	n.DNS().Set("coap.example", netip.MustParseAddr("10.0.0.1"))

	pc, _ := srv.ListenPacket("udp", ":5683")
	defer pc.Close()
	go socktest.Echo(pc)

	s, _ := dev.NewSocket("udp", nil)
	defer s.Close()
	if err := s.Connect(context.Background(), "coap.example", "5683"); err != nil {
		panic(err)
	}

	dev.SetDown(true) // the device loses its network
	err := s.Send([]byte("hello"))
	fmt.Println(errors.Is(err, syscall.ENETUNREACH))

	dev.SetDown(false) // and gets it back
	s.Send([]byte("hello"))
	buf := make([]byte, 16)
	k, _ := s.Receive(buf)
	fmt.Println(string(buf[:k]))
	// Output:
	// true
	// hello
}
