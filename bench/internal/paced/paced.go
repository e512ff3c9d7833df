// Package paced is an open-loop HTTP/1.1 load generator: GETs of one URL
// at a fixed rate over a fixed set of keep-alive connections, recording
// every request's latency. Unlike a closed loop (wrk), the offered load
// does not depend on how fast answers come, so latencies of different
// servers at the same rate compare like for like.
//
// Each connection has its own schedule (connection w of c sends request k
// at start + (k*c + w)/rate, so the connections' requests interleave
// evenly). A request's latency runs from the moment it is written to the
// moment its whole response has been read; when the connection was still
// busy with the previous request at the scheduled time, it runs from the
// scheduled time instead (the delay a client would see: no coordinated
// omission), and the request counts as late. A connection that wakes up
// late from its own timer is not the server's fault: that delay is not
// counted.
//
// The client is minimal (a request written with one write, the response
// read with net/http's ReadResponse on the same goroutine: no extra
// goroutines or channel hand-offs per request), so that its own cost and
// jitter stay small next to what is measured.
package paced

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/cairnhq/cairn/bench/internal/stats"
)

// Config is one paced run.
type Config struct {
	URL      string        // http://host:port/path
	Rate     float64       // requests per second, all connections together
	Conns    int           // keep-alive connections
	Duration time.Duration // measured time
	Warmup   time.Duration // time at the same rate before it, not measured
	Timeout  time.Duration // one request's limit (0: 2s)
}

// Sample is one measured request.
type Sample struct {
	Sent    time.Duration // scheduled send time, since the start of the measured time
	Latency time.Duration
}

// Result is what one run measured.
type Result struct {
	Rate     float64       `json:"rate"`     // the target rate
	Achieved float64       `json:"achieved"` // measured requests answered 200 per second
	Conns    int           `json:"conns"`
	Elapsed  time.Duration `json:"elapsed"` // the measured time
	OK       int64         `json:"ok"`
	Errors   int64         `json:"errors,omitempty"`
	FirstErr string        `json:"firstErr,omitempty"`
	// Late counts requests whose connection was still busy at their
	// scheduled time (their latency runs from that time).
	Late    int64         `json:"late,omitempty"`
	Latency stats.Summary `json:"latency"`
	P999    time.Duration `json:"p999"`
	// Samples are the measured requests in no particular order.
	Samples []Sample `json:"-"`
}

// Run performs cfg's run.
func Run(ctx context.Context, cfg Config) (Result, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return Result{}, err
	}
	if u.Scheme != "http" || u.Host == "" {
		return Result{}, fmt.Errorf("%s: want http://host:port/path", cfg.URL)
	}
	if cfg.Rate <= 0 || cfg.Conns <= 0 || cfg.Duration <= 0 {
		return Result{}, errors.New("rate, conns and duration must be positive")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	req := []byte(fmt.Sprintf("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: cairnbench-paced\r\nAccept: */*\r\n\r\n", u.RequestURI(), u.Host))

	// Connect every connection before the clock starts.
	conns := make([]*conn, cfg.Conns)
	for i := range conns {
		if conns[i], err = dial(ctx, addr); err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			return Result{}, err
		}
	}
	start := time.Now().Add(20 * time.Millisecond)
	measureFrom := start.Add(cfg.Warmup)
	end := measureFrom.Add(cfg.Duration)
	interval := time.Duration(float64(time.Second) * float64(cfg.Conns) / cfg.Rate)

	type worker struct {
		samples []Sample
		ok      int64
		errs    int64
		late    int64
		first   error
	}
	ws := make([]worker, cfg.Conns)
	var wg sync.WaitGroup
	for w := range cfg.Conns {
		wg.Go(func() {
			me := &ws[w]
			c := conns[w]
			defer func() {
				if c != nil {
					c.Close()
				}
			}()
			me.samples = make([]Sample, 0, int(cfg.Duration.Seconds()*cfg.Rate/float64(cfg.Conns))+16)
			offset := time.Duration(float64(time.Second) * float64(w) / cfg.Rate)
			var prevDone time.Time
			for k := 0; ; k++ {
				due := start.Add(offset + time.Duration(k)*interval)
				if !due.Before(end) || ctx.Err() != nil {
					return
				}
				measured := !due.Before(measureFrom)
				begin := time.Now()
				late := false
				if wait := due.Sub(begin); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
					begin = time.Now() // timer slack is ours, not the server's
				} else if prevDone.After(due) {
					begin, late = due, true // the connection was busy: the server's delay
				}
				if c == nil {
					var err error
					if c, err = dial(ctx, addr); err != nil {
						if measured {
							me.errs++
							if me.first == nil {
								me.first = err
							}
						}
						prevDone = time.Now()
						continue
					}
				}
				err := c.do(req, cfg.Timeout)
				done := time.Now()
				prevDone = done
				if err != nil {
					c.Close()
					c = nil
					if measured && ctx.Err() == nil {
						me.errs++
						if me.first == nil {
							me.first = err
						}
					}
					continue
				}
				if !measured {
					continue
				}
				me.ok++
				if late {
					me.late++
				}
				me.samples = append(me.samples, Sample{Sent: due.Sub(measureFrom), Latency: done.Sub(begin)})
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return Result{}, ctx.Err()
	}
	r := Result{Rate: cfg.Rate, Conns: cfg.Conns, Elapsed: cfg.Duration}
	lat := make([]time.Duration, 0, int(cfg.Duration.Seconds()*cfg.Rate)+16)
	for _, w := range ws {
		r.OK += w.ok
		r.Errors += w.errs
		r.Late += w.late
		if w.first != nil && r.FirstErr == "" {
			r.FirstErr = w.first.Error()
		}
		r.Samples = append(r.Samples, w.samples...)
		for _, s := range w.samples {
			lat = append(lat, s.Latency)
		}
	}
	r.Achieved = float64(r.OK) / cfg.Duration.Seconds()
	slices.Sort(lat)
	if len(lat) > 0 {
		r.Latency = stats.Summarize(lat)
		r.P999 = stats.Percentile(lat, 0.999)
	}
	return r, nil
}

// Summarize pools the samples of several runs (of the same target) into one
// latency summary and p99.9.
func Summarize(runs ...Result) (stats.Summary, time.Duration) {
	var lat []time.Duration
	for _, r := range runs {
		for _, s := range r.Samples {
			lat = append(lat, s.Latency)
		}
	}
	if len(lat) == 0 {
		return stats.Summary{}, 0
	}
	slices.Sort(lat)
	return stats.Summarize(lat), stats.Percentile(lat, 0.999)
}

// conn is one keep-alive connection.
type conn struct {
	net.Conn
	br *bufio.Reader
}

func dial(ctx context.Context, addr string) (*conn, error) {
	d := net.Dialer{Timeout: 2 * time.Second}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, br: bufio.NewReaderSize(c, 16<<10)}, nil
}

// do sends req and reads the whole response; anything but a 200 on a
// connection that stays open is an error.
func (c *conn) do(req []byte, timeout time.Duration) error {
	c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write(req); err != nil {
		return err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %s", resp.Status)
	}
	if resp.Close {
		return errors.New("the server closed the connection (Connection: close)")
	}
	return nil
}
