// Command tether downloads files over CoAP and keeps going when the network
// does not: a download interrupted by an outage, a Ctrl-C or a kill resumes
// from where it stopped when run again.
//
//	tether get URL [-o FILE|-] [--block-size N] [--sha256 HEX] [--json] [--restart]
//	           [--allow-unverified] [--ack-timeout D] [--give-up D] [--max-time D]
//	           [--max-size N] [--ca FILE] [--cert FILE --key FILE]
//	           [--psk-id ID --psk KEY | --psk-hex HEX]
//	tether serve DIR [--udp ADDR] [--tcp ADDR] [--tls ADDR] [--dtls ADDR]
//	           [--cert FILE --key FILE] [--psk-id ID --psk KEY | --psk-hex HEX]
//	tether demo
//
// Every failure ends with a non-zero exit status and one line on stderr
// saying why.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// exitInterrupted is the status after Ctrl-C or SIGTERM, as shells report a
// SIGINT death.
const exitInterrupted = 130

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage:
  tether get URL [-o FILE|-] [--block-size N] [--sha256 HEX] [--json] [--restart]
             [--allow-unverified] [--ack-timeout D] [--give-up D] [--max-time D]
             [--max-size N] [--ca FILE] [--cert FILE --key FILE]
             [--psk-id ID --psk KEY | --psk-hex HEX]
  tether serve DIR [--udp ADDR] [--tcp ADDR] [--tls ADDR] [--dtls ADDR]
             [--cert FILE --key FILE] [--psk-id ID --psk KEY | --psk-hex HEX]
  tether demo
`

// run is the whole command, testable: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "get":
		err = get(ctx, args[1:], stdout, stderr)
	case "serve":
		err = serve(ctx, args[1:], stderr)
	case "demo":
		err = demo(ctx, args[1:], stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		err = usageError{fmt.Errorf("unknown command %q", args[0])}
	}
	var ue usageError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "tether: %v\n%s", err, usage)
		return 2
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		fmt.Fprintf(stderr, "tether: interrupted: %v\n", err)
		return exitInterrupted
	}
	fmt.Fprintf(stderr, "tether: %v\n", err)
	return 1
}

// usageError is a mistake in the command line.
type usageError struct{ error }

// parse parses flags that may come before, between or after the positional
// arguments, and returns the positional ones.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, usageError{err}
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
