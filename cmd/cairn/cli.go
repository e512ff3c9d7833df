package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"

	"github.com/cairnhq/cairn/pkg/client"
)

// cliCommands returns the client verbs, built on pkg/client.
func cliCommands() []command {
	return []command{
		{"register", "register an instance (--keep: keep it registered until interrupted)", runRegister},
		{"renew", "renew an instance's lease: renew SERVICE ID", runRenew},
		{"deregister", "remove an instance: deregister SERVICE ID", runDeregister},
		{"status", "show the server's status; or set the status an instance reports: status SERVICE ID STATUS", runStatus},
		{"override", "set an operator's status override: override SERVICE ID STATUS (--clear: remove it)", runOverride},
		{"services", "list services with their instance counts", runServices},
		{"instances", "list instances: instances [SERVICE]", runInstances},
		{"get", "show one instance: get SERVICE ID; or config documents: get KIND [NAME]", runGet},
		{"watch", "stream changes until interrupted: watch [SERVICE]", runWatch},
		{"apply", "create or update config documents (routes) from files: apply -f FILE", runApply},
		{"delete", "delete config documents: delete KIND NAME, or delete -f FILE", runDelete},
		{"diff", "show how files differ from the server's documents: diff -f FILE (exit 1 when they do)", runDiff},
	}
}

// defaultServer is the server address when neither --server nor
// $CAIRN_ADDR says otherwise.
const defaultServer = "http://127.0.0.1:8761"

// cli is one invocation of a client verb: its flag set, with the global
// flags (--server, -o) every verb accepts, and its output streams.
type cli struct {
	name     string
	synopsis string // arguments after the verb, for usage lines
	about    string
	fs       *flag.FlagSet
	server   string
	output   string
	stdout   io.Writer
	stderr   io.Writer
}

func newCLI(name, synopsis, about string, stdout, stderr io.Writer) *cli {
	c := &cli{name: name, synopsis: synopsis, about: about, stdout: stdout, stderr: stderr}
	c.fs = flag.NewFlagSet("cairn "+name, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.fs.Usage = c.usage
	server := os.Getenv("CAIRN_ADDR")
	if server == "" {
		server = defaultServer
	}
	c.fs.StringVar(&c.server, "server", server, "Cairn server `URL` ($CAIRN_ADDR sets the default)")
	c.fs.StringVar(&c.output, "output", "table", "output `FORMAT`: table, json or yaml")
	c.fs.StringVar(&c.output, "o", "table", "shorthand for --output")
	return c
}

func (c *cli) usage() {
	w := c.fs.Output()
	fmt.Fprintf(w, "Usage: cairn %s %s\n\n%s\n\nFlags:\n", c.name, c.synopsis, c.about)
	c.fs.PrintDefaults()
}

// namespaceFlag adds --namespace and its shorthand -n.
func (c *cli) namespaceFlag(def, help string) *string {
	ns := new(string)
	c.fs.StringVar(ns, "namespace", def, help)
	c.fs.StringVar(ns, "n", def, "shorthand for --namespace")
	return ns
}

// parse parses flags, which may come before, between or after the
// positional arguments (up to "--"), checks the global flags and returns
// the positional arguments. -h prints the usage (flag.ErrHelp); any other
// mistake prints one line and returns errUsage.
func (c *cli) parse(args []string) ([]string, error) {
	var discard bytes.Buffer
	c.fs.SetOutput(&discard) // the flag package would print the whole flag set on errors
	defer c.fs.SetOutput(c.stderr)
	var pos []string
	for {
		err := c.fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			c.fs.SetOutput(c.stderr)
			c.usage()
			return nil, flag.ErrHelp
		}
		if err != nil {
			return nil, c.usageError("%v", err)
		}
		rest := c.fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch c.output {
	case "table", "json", "yaml":
	default:
		return nil, c.usageError("-o/--output must be table, json or yaml, not %q", c.output)
	}
	return pos, nil
}

// usageError prints one line naming the mistake and returns errUsage (exit 2).
func (c *cli) usageError(format string, args ...any) error {
	msg := oneLine(fmt.Sprintf(format, args...))
	fmt.Fprintf(c.stderr, "cairn %s: %s (usage: cairn %s %s; see 'cairn %s -h')\n", c.name, msg, c.name, c.synopsis, c.name)
	return errUsage
}

// args checks the number of positional arguments.
func (c *cli) args(pos []string, min, max int) error {
	if len(pos) < min || len(pos) > max {
		return c.usageError("wrong number of arguments (%d)", len(pos))
	}
	return nil
}

// client returns a client of --server, or a usage error for a bad address.
func (c *cli) client() (*client.Client, error) {
	cl, err := client.New(c.server, client.WithUserAgent("cairn-cli/"+version))
	if err != nil {
		return nil, c.usageError("--server: %v", strings.TrimPrefix(err.Error(), "client: "))
	}
	return cl, nil
}

// explain makes a client error read well on one line: the server's own
// message for API errors ("ports[0].port: must be between 1 and 65535"),
// with what was not found for 404s, and the server's address when it
// cannot be reached.
func (c *cli) explain(err error, what string) error {
	var ae *client.APIError
	var ue *url.Error
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.Canceled):
		return errors.New("interrupted")
	case client.IsNotFound(err) && what != "" && !strings.Contains(err.Error(), what):
		return fmt.Errorf("%s: %w", what, err)
	case errors.As(err, &ae):
		return err
	case errors.As(err, &ue):
		return fmt.Errorf("cannot reach %s: %v", c.server, ue.Err)
	}
	return err
}
