package kube

import "context"

// stub is a component that does nothing: the place of a part not built yet.
type stub struct{ done chan struct{} }

func newStub() *stub {
	s := &stub{done: make(chan struct{})}
	close(s.done)
	return s
}
func (s *stub) setup() error            { return nil }
func (s *stub) run(ctx context.Context) { <-ctx.Done() }
func (s *stub) synced() <-chan struct{} { return s.done }
