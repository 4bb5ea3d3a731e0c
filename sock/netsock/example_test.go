package netsock_test

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/tether-iot/tether/sock/netsock"
	"github.com/tether-iot/tether/sock/socktest"
)

func ExampleNew() {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer pc.Close()
	go socktest.Echo(pc)
	port := strconv.Itoa(pc.LocalAddr().(*net.UDPAddr).Port)

	s, err := netsock.New("udp4", nil)
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if err := s.Connect(context.Background(), "127.0.0.1", port); err != nil {
		panic(err)
	}
	if err := s.Send([]byte("ping")); err != nil {
		panic(err)
	}
	buf := make([]byte, 64)
	n, err := s.Receive(buf)
	if err != nil {
		panic(err)
	}
	fmt.Println(s.State(), string(buf[:n]))
	// Output: connected ping
}
