module github.com/tether-iot/tether

go 1.26.0

require golang.org/x/sys v0.50.0

require (
	github.com/plgd-dev/go-coap/v3 v3.8.0
	go.uber.org/goleak v1.3.0
)

require golang.org/x/exp v0.0.0-20261014143641-f0251eb4aa3e // indirect
