// Package etcdload drives etcd with the official Go client
// (go.etcd.io/etcd/client/v3): puts and a prefix watch, the reference a
// consistent store sets for Cairn's registrations and change propagation.
package etcdload

import (
	"context"
	"fmt"
	"time"

	"github.com/cairnhq/cairn/bench/internal/prop"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Dial connects to one etcd endpoint (http://host:port).
func Dial(ctx context.Context, endpoint string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		Context:     ctx,
	})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Status(sctx, endpoint); err != nil {
		cli.Close()
		return nil, fmt.Errorf("etcd %s: %w", endpoint, err)
	}
	return cli, nil
}

// Version returns the server version of endpoint.
func Version(ctx context.Context, cli *clientv3.Client, endpoint string) (string, error) {
	st, err := cli.Status(ctx, endpoint)
	if err != nil {
		return "", err
	}
	return st.Version, nil
}

// WatchCreated watches every key under prefix and returns, once etcd has
// confirmed the watch, a channel that receives the key of every created
// key (a put whose create revision is its mod revision) with the time the
// watch response was read. Cancel ctx to end the watch; the channel is
// then closed. A full channel drops events rather than stall the watch.
func WatchCreated(ctx context.Context, cli *clientv3.Client, prefix string, buffer int) (<-chan prop.Seen, error) {
	wch := cli.Watch(clientv3.WithRequireLeader(ctx), prefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	select {
	case resp, ok := <-wch:
		if !ok {
			return nil, fmt.Errorf("etcd watch %s: closed before it was created", prefix)
		}
		if err := resp.Err(); err != nil {
			return nil, fmt.Errorf("etcd watch %s: %w", prefix, err)
		}
		if !resp.Created {
			return nil, fmt.Errorf("etcd watch %s: first response is not the creation notice", prefix)
		}
	case <-time.After(10 * time.Second):
		return nil, fmt.Errorf("etcd watch %s: not created within 10s", prefix)
	}
	out := make(chan prop.Seen, buffer)
	go func() {
		defer close(out)
		for resp := range wch {
			at := time.Now()
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut || ev.Kv.CreateRevision != ev.Kv.ModRevision {
					continue
				}
				select {
				case out <- prop.Seen{Key: string(ev.Kv.Key), At: at}:
				default:
				}
			}
		}
	}()
	return out, nil
}
