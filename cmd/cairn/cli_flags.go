package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/pkg/client"
)

// listFlag is a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	if s == "" {
		return fmt.Errorf("must not be empty")
	}
	*l = append(*l, s)
	return nil
}

// kvFlag is a repeatable KEY=VALUE flag (--meta).
type kvFlag map[string]string

func (m *kvFlag) String() string {
	var parts []string
	for k, v := range *m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (m *kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok || k == "" {
		return fmt.Errorf("want KEY=VALUE, got %q", s)
	}
	if *m == nil {
		*m = kvFlag{}
	}
	if _, dup := (*m)[k]; dup {
		return fmt.Errorf("key %q given twice", k)
	}
	(*m)[k] = v
	return nil
}

// portsFlag is a repeatable NAME=PORT[/PROTOCOL] flag; a bare
// PORT[/PROTOCOL] is named "default".
type portsFlag []client.Port

func (p *portsFlag) String() string {
	var parts []string
	for _, x := range *p {
		parts = append(parts, formatPort(x))
	}
	return strings.Join(parts, ",")
}

func (p *portsFlag) Set(s string) error {
	port, err := parsePort(s)
	if err != nil {
		return err
	}
	for _, x := range *p {
		if x.Name == port.Name {
			return fmt.Errorf("port name %q given twice", port.Name)
		}
	}
	*p = append(*p, port)
	return nil
}

// parsePort reads NAME=PORT[/PROTOCOL] or PORT[/PROTOCOL]. It checks the
// syntax only; the server checks the values (range, protocol, name).
func parsePort(s string) (client.Port, error) {
	bad := fmt.Errorf("want NAME=PORT[/PROTOCOL] or PORT[/PROTOCOL], got %q", s)
	name, rest, named := strings.Cut(s, "=")
	if !named {
		name, rest = "default", s
	}
	num, proto, hasProto := strings.Cut(rest, "/")
	n, err := strconv.Atoi(num)
	if name == "" || err != nil || (hasProto && proto == "") || strings.ContainsAny(proto, "/=") {
		return client.Port{}, bad
	}
	return client.Port{Name: name, Port: n, Protocol: proto}, nil
}

// durationFlag reads "30s" or a number of seconds, never negative.
type durationFlag struct {
	d   time.Duration
	set bool
}

func (d *durationFlag) String() string {
	if d == nil {
		return ""
	}
	return d.d.String()
}

func (d *durationFlag) Set(s string) error {
	v, err := client.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("want a duration such as 30s or a number of seconds, got %q", s)
	}
	if v < 0 {
		return fmt.Errorf("must not be negative")
	}
	d.d, d.set = v, true
	return nil
}

// parseStatus reads one of the five statuses, in any case.
func parseStatus(s string) (client.Status, error) {
	st := client.Status(strings.ToUpper(s))
	if !st.Valid() {
		return "", fmt.Errorf("status must be one of UP, DOWN, STARTING, OUT_OF_SERVICE, UNKNOWN, not %q", s)
	}
	return st, nil
}

// parseCheck reads --check: http[:/PATH], https[:/PATH], tcp or
// grpc[:SERVICE].
func parseCheck(s string) (*client.CheckSpec, error) {
	typ, arg, hasArg := strings.Cut(s, ":")
	c := &client.CheckSpec{Type: strings.ToLower(typ)}
	switch c.Type {
	case "http", "https":
		if hasArg {
			if !strings.HasPrefix(arg, "/") {
				return nil, fmt.Errorf("--check %s: the path must start with '/', got %q", c.Type, arg)
			}
			c.Path = arg
		}
	case "grpc":
		if hasArg {
			if arg == "" {
				return nil, fmt.Errorf("--check grpc: empty service name")
			}
			c.GRPCService = arg
		}
	case "tcp":
		if hasArg {
			return nil, fmt.Errorf("--check tcp takes no argument, got %q", s)
		}
	default:
		return nil, fmt.Errorf("--check must be http[:/PATH], https[:/PATH], tcp or grpc[:SERVICE], got %q", s)
	}
	return c, nil
}
