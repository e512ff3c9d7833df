package prop

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	seen := make(chan Seen, 16)
	key := func(i int) string { return fmt.Sprint("k", i) }
	write := func(_ context.Context, i int) error {
		go func() {
			time.Sleep(time.Millisecond)
			seen <- Seen{Key: "other", At: time.Now()}
			if i != 3 { // write 3 is never seen
				seen <- Seen{Key: key(i), At: time.Now()}
			}
		}()
		return nil
	}
	r, err := Run(context.Background(), 5, 200*time.Millisecond, key, write, seen)
	if err != nil {
		t.Fatal(err)
	}
	if r.Count != 4 || r.Timeouts != 1 || r.P50 < time.Millisecond || r.Max > 200*time.Millisecond {
		t.Fatalf("result %+v", r)
	}
}
