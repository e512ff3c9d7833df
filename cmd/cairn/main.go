// Command cairn is Cairn's one binary: the server (`server`, `dev`) and the
// command-line client (`register`, `instances`, `watch`, ...).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

// command is one verb of the binary. run gets the arguments after the verb;
// it returns an error to be printed as one line on stderr (exit 1), or
// errUsage after printing usage itself (exit 2).
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

var errUsage = errors.New("usage")

func commands() []command {
	cmds := []command{
		{"server", "run the Cairn server (production: bind addresses from flags, no demo content)", runServer},
		{"dev", "run the Cairn server on 127.0.0.1 for development (embedded store under --data-dir)", runDev},
		{"proxy", "run the gateway: routes from a server (--server) or a file (--config)", runProxy},
	}
	cmds = append(cmds, cliCommands()...)
	cmds = append(cmds, command{"version", "print the version", func(_ context.Context, _ []string, out, _ io.Writer) error {
		fmt.Fprintln(out, "cairn", version)
		return nil
	}})
	return cmds
}

var version = "dev"

func usage(w io.Writer) {
	fmt.Fprintf(w, "Cairn: service discovery and traffic control.\n\nUsage: cairn <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'cairn <command> -h' for a command's flags.\n")
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(ctx, args[1:], stdout, stderr)
		var ee *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.Is(err, errUsage):
			return 2
		case errors.As(err, &ee):
			if ee.err != nil {
				fmt.Fprintf(stderr, "cairn %s: %s\n", c.name, oneLine(ee.err.Error()))
			}
			return ee.code
		default:
			fmt.Fprintf(stderr, "cairn %s: %s\n", c.name, oneLine(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "cairn: unknown command %q (run 'cairn help')\n", args[0])
	return 2
}

// oneLine keeps error output to one line whatever the error carries.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
