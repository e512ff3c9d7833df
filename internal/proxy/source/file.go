package source

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cairnhq/cairn/internal/config"
	"github.com/cairnhq/cairn/internal/proxy"
)

// LoadFile reads a file of Route documents into a snapshot.
func LoadFile(path string) (*proxy.Snapshot, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	docs, err := config.Parse(data)
	if err != nil {
		return nil, data, fmt.Errorf("%s: %w", path, err)
	}
	return &proxy.Snapshot{Routes: docs}, data, nil
}

// FollowFile applies the file whenever it changes (checked every interval,
// and at once on a value from reload, e.g. SIGHUP) until ctx ends. The
// file is expected to have been loaded once already (its content given as
// loaded). A file with an error is logged and ignored: the running config
// stays.
func FollowFile(ctx context.Context, path string, loaded []byte, sink proxy.Updater, reload <-chan struct{}, interval time.Duration, log *slog.Logger) {
	last := loaded
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		forced := false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-reload:
			forced = true
		}
		data, err := os.ReadFile(path)
		if err != nil {
			log.Error("reading the config file; the running config stays", "file", path, "err", err)
			continue
		}
		if bytes.Equal(data, last) && !forced {
			continue
		}
		last = data
		docs, err := config.Parse(data)
		if err == nil {
			err = sink.Update(&proxy.Snapshot{Routes: docs})
		}
		if err != nil {
			log.Error("config file rejected; the running config stays", "file", path, "err", err)
			continue
		}
		log.Info("config file applied", "file", path, "routes", len(docs))
	}
}
