package cairnhttp

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/cairnhq/cairn/bench/internal/prop"
)

// changeEvent is the part of a watch `change` event the benchmark reads.
type changeEvent struct {
	Type     string `json:"type"`
	Kind     string `json:"kind"`
	Instance *struct {
		ID string `json:"id"`
	} `json:"instance"`
}

// WatchAdded opens GET /v1/watch for one service and returns, once the
// stream's opening snapshot has arrived, a channel that receives the
// instance ID of every ADDED instance change with the time it was read.
// The channel is closed when the stream ends; cancel ctx to end it. It
// holds buffer changes; a full channel drops changes rather than stall the
// stream (a dropped change shows up as a timeout, never as a latency).
func (c *Client) WatchAdded(ctx context.Context, ns, svc string, buffer int) (<-chan prop.Seen, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+query("/v1/watch", "namespace", ns, "service", svc), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	hc := &http.Client{Transport: c.hc.Transport} // no overall timeout: the stream lives as long as ctx
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("watch: %s", resp.Status)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 64<<20) // the snapshot is one line
	ready := make(chan error, 1)
	out := make(chan prop.Seen, buffer)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		snapshot := false
		event := ""
		for sc.Scan() {
			line := sc.Text()
			at := time.Now()
			switch {
			case line == "":
				event = ""
			case strings.HasPrefix(line, "event: "):
				event = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				if event == "snapshot" && !snapshot {
					snapshot = true
					ready <- nil
					continue
				}
				if event != "change" {
					continue
				}
				var ev changeEvent
				if err := json.Unmarshal([]byte(line[len("data: "):]), &ev); err != nil || ev.Instance == nil ||
					ev.Type != "ADDED" || ev.Kind != "instance" {
					continue
				}
				select {
				case out <- prop.Seen{Key: ev.Instance.ID, At: at}:
				default:
				}
			}
		}
		if !snapshot {
			ready <- fmt.Errorf("watch: stream ended before its snapshot: %v", sc.Err())
		}
	}()
	select {
	case err := <-ready:
		if err != nil {
			return nil, err
		}
		return out, nil
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("watch: no snapshot within 10s")
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
