// Command tether downloads files over CoAP and HTTP and keeps going when
// the network does not: a download interrupted by an outage, a Ctrl-C or a
// kill resumes from where it stopped when run again. It also serves a
// directory over CoAP (serve), runs as an LwM2M device whose firmware
// updates are such downloads (device), and shows an offline gap healed
// (demo).
//
// The usage is written once, in the commands' definitions (newGet,
// newServe, newDevice, newDemo, and the credential flags in creds.go),
// from which cobra prints it: tether help, tether help COMMAND, tether
// COMMAND -h.
//
// Every failure ends with one line on stderr that says why, and an exit
// status that says what kind of failure it was (tether help exit-codes).
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func main() {
	ctx, stop := signalContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// interrupted is the cause of a context that a signal ended: the exit
// status is a shell's for a death by that signal, 128 plus its number
// (130 for SIGINT, 143 for SIGTERM). It matches context.Canceled.
type interrupted struct{ sig os.Signal }

func (e interrupted) Error() string        { return e.sig.String() }
func (e interrupted) Is(target error) bool { return target == context.Canceled }

// status is the exit status for the signal.
func (e interrupted) status() int {
	if s, ok := e.sig.(syscall.Signal); ok {
		return 128 + int(s)
	}
	return exitInterrupted
}

// signalContext is signal.NotifyContext whose cause names the signal.
func signalContext(parent context.Context, sigs ...os.Signal) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, sigs...)
	go func() {
		select {
		case sig := <-ch:
			cancel(interrupted{sig})
		case <-ctx.Done():
		}
	}()
	return ctx, func() { signal.Stop(ch); cancel(nil) }
}

// run is the whole command, testable: it returns the exit status. ctx ends
// on Ctrl-C or SIGTERM.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exitOK
	}
	code := exitCode(ctx, err)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "tether: %v\nRun 'tether help' for usage.\n", err)
		return code
	}
	if code == exitInterrupted || code == exitTerminated {
		fmt.Fprintf(stderr, "tether: interrupted: %v\n", err)
		return code
	}
	fmt.Fprintf(stderr, "tether: %v\n", err)
	return code
}

// newRoot builds the command tree; stdout carries data and JSON only,
// stderr everything said to people.
func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "tether",
		Short: "Resumable downloads over CoAP and HTTP, and an LwM2M device, for links that come and go",
		Long: `tether downloads files over CoAP (coap, coaps, coap+tcp, coaps+tcp) and HTTP
(http, https). A download interrupted by an outage, a Ctrl-C or a kill
continues from where it stopped when the same command runs again, after
checking that what it kept is intact. tether device runs an LwM2M 1.1
client whose firmware updates are such downloads.`,
		Version:       version(),
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageError{fmt.Errorf("unknown command %q", args[0])}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SetOut(stderr)
			cmd.Usage()
			return usageError{errors.New("a command is needed: get, serve, device, fleet or demo")}
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.Flags().Bool("version", false, "print tether's version and revision") // no -v: that is verbosity
	root.SetVersionTemplate("{{.Version}}\n")
	root.CompletionOptions.HiddenDefaultCmd = true
	root.SetFlagErrorFunc(flagError)
	root.AddCommand(newGet(stdout, stderr), newServe(stderr), newDevice(os.Stdin, stdout, stderr), newDemo(stdout), newFleet(stdout, stderr), exitCodesTopic(), jsonTopic())
	return root
}

// version is the module's version and VCS revision, from the build info.
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "tether (unknown version)"
	}
	v := "tether " + bi.Main.Version
	var rev, modified string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = ", modified"
			}
		}
	}
	if rev != "" {
		v += fmt.Sprintf(" (revision %.12s%s)", rev, modified)
	}
	return v + ", " + bi.GoVersion
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

// flagError makes pflag's parse errors usage errors, with the fix where
// one is obvious.
func flagError(_ *cobra.Command, err error) error {
	msg := err.Error()
	if strings.Contains(msg, "missing unit in duration") {
		var name string
		if i := strings.Index(msg, `for "`); i >= 0 {
			name = strings.SplitN(msg[i+5:], `"`, 2)[0]
		}
		return usageError{fmt.Errorf("%s needs a unit, e.g. 10s or 5m (%v)", name, err)}
	}
	return usageError{err}
}

// verbosity adds -v (repeatable) and -q to a command.
type verbosity struct {
	verbose int
	quiet   bool
}

func (v *verbosity) add(fs *pflag.FlagSet, more string) {
	fs.CountVarP(&v.verbose, "verbose", "v", "say more: "+more)
	fs.BoolVarP(&v.quiet, "quiet", "q", false, "say nothing but errors")
}
