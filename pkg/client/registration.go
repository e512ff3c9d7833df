package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sync"
	"time"
)

// RegistrationOptions tunes KeepRegistered. Zero values take the defaults.
type RegistrationOptions struct {
	// RenewInterval is how often the lease is renewed. Default: the
	// instance's renewInterval as the server stored it (ttl/3 unless the
	// instance names one), or 30s for an instance without a lease (the
	// renewal then only checks that the server still knows it).
	RenewInterval time.Duration
	// DeregisterTimeout bounds the deregistration when the registration
	// stops (default 5s).
	DeregisterTimeout time.Duration
	// MinBackoff and MaxBackoff bound the delay between failed attempts
	// (default 500ms and 30s); a retry never waits longer than RenewInterval.
	MinBackoff, MaxBackoff time.Duration
	// OnEvent, when set, is called after every attempt that changes the
	// state or fails, one call at a time. It must return quickly.
	OnEvent func(RegistrationEvent)
}

// RegistrationState is where a Registration stands.
type RegistrationState string

// The states of a Registration.
const (
	// StatePending: the first registration has not succeeded yet.
	StatePending RegistrationState = "pending"
	// StateRegistered: the last registration or renewal succeeded.
	StateRegistered RegistrationState = "registered"
	// StateFailing: the last attempt failed; it is retried with backoff.
	StateFailing RegistrationState = "failing"
	// StateStopped: the registration ended (and deregistered).
	StateStopped RegistrationState = "stopped"
)

// RegistrationEvent reports one step of a Registration.
type RegistrationEvent struct {
	// Action is what was attempted: "register" (the first time),
	// "reregister" (the server no longer knew the instance), "renew" or
	// "deregister".
	Action string
	State  RegistrationState
	Err    error         // nil when the attempt succeeded
	Retry  time.Duration // with Err: the delay before the next attempt
}

// Registration keeps one instance registered; see KeepRegistered. Its
// methods are safe for concurrent use.
type Registration struct {
	c    *Client
	opts RegistrationOptions
	key  Key

	mu       sync.Mutex
	tmpl     Instance  // what is (re)registered
	inst     *Instance // the server's last answer
	state    RegistrationState
	err      error
	stopErr  error
	interval time.Duration

	cancel     context.CancelFunc
	done       chan struct{}
	registered chan struct{}
	regOnce    sync.Once
}

// KeepRegistered registers inst and keeps it registered until ctx ends or
// Stop is called, then deregisters it (bounded by DeregisterTimeout).
//
// It renews the lease every RenewInterval; when a renewal answers 404 (the
// server restarted, or evicted the instance) it registers the instance
// again; network errors and 5xx answers are retried with backoff. An
// instance without an ID gets one here ("<service>-<12 hex digits>"), so
// that registering again keeps the same ID.
//
// The first registration happens before KeepRegistered returns. If the
// server rejects it (a 4xx such as 400: invalid input) KeepRegistered
// returns that error and does nothing more; if ctx ends first, it
// deregisters (in case the registration landed) and returns ctx's error. If it fails otherwise (the
// server is unreachable), KeepRegistered returns the Registration anyway,
// keeps trying in the background and reports the failure through Err,
// State and OnEvent; WaitRegistered waits for success.
func KeepRegistered(ctx context.Context, c *Client, inst Instance, opts RegistrationOptions) (*Registration, error) {
	if c == nil {
		return nil, errors.New("client: KeepRegistered needs a client")
	}
	if inst.Service == "" {
		return nil, errors.New("client: service is required")
	}
	if inst.ID == "" {
		inst.ID = NewInstanceID(inst.Service)
	}
	if inst.Namespace == "" {
		inst.Namespace = DefaultNamespace
	}
	if opts.DeregisterTimeout <= 0 {
		opts.DeregisterTimeout = 5 * time.Second
	}
	r := &Registration{
		c: c, opts: opts, key: inst.Key(), tmpl: inst.Clone(), state: StatePending,
		done: make(chan struct{}), registered: make(chan struct{}),
	}
	got, err := c.Register(ctx, inst)
	if err != nil && ctx.Err() != nil {
		// Stopped before the answer: the registration may have landed.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opts.DeregisterTimeout)
		defer cancel()
		_, _ = c.Deregister(dctx, r.key)
		return nil, err
	}
	if err != nil && isPermanent(err) {
		return nil, err
	}
	r.record("register", got, err, 0)
	runCtx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	go r.run(runCtx, ctx, err != nil)
	return r, nil
}

// NewInstanceID returns a fresh random instance ID for service:
// "<service>-<12 hex digits>", the form the server generates.
func NewInstanceID(service string) string {
	var b [6]byte
	_, _ = rand.Read(b[:]) // crypto/rand does not fail
	if len(service) > 200 {
		service = service[:200]
	}
	if service == "" {
		return hex.EncodeToString(b[:])
	}
	return service + "-" + hex.EncodeToString(b[:])
}

// record stores the outcome of an attempt and reports it.
func (r *Registration) record(action string, got *Instance, err error, retry time.Duration) {
	r.mu.Lock()
	prev := r.state
	switch {
	case action == "deregister":
		r.state = StateStopped
	case err != nil:
		if r.state != StatePending {
			r.state = StateFailing
		}
	default:
		r.state = StateRegistered
		if got != nil {
			c := got.Clone()
			r.inst = &c
			r.interval = r.renewInterval(got)
		}
	}
	r.err = err
	state := r.state
	r.mu.Unlock()
	if err == nil && state == StateRegistered {
		r.regOnce.Do(func() { close(r.registered) })
	}
	if r.opts.OnEvent != nil && (err != nil || state != prev || action != "renew") {
		r.opts.OnEvent(RegistrationEvent{Action: action, State: state, Err: err, Retry: retry})
	}
}

// renewInterval picks the renewal period for the registered instance.
func (r *Registration) renewInterval(got *Instance) time.Duration {
	switch {
	case r.opts.RenewInterval > 0:
		return r.opts.RenewInterval
	case got.RenewInterval > 0:
		return got.RenewInterval
	case got.TTL > 0:
		return max(got.TTL/3, time.Millisecond)
	}
	return 30 * time.Second
}

func (r *Registration) currentInterval() time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.interval > 0 {
		return r.interval
	}
	if r.opts.RenewInterval > 0 {
		return r.opts.RenewInterval
	}
	if r.tmpl.TTL > 0 {
		return max(r.tmpl.TTL/3, time.Millisecond)
	}
	return 30 * time.Second
}

// run renews until ctx ends, then deregisters. parent is the caller's
// context, whose values the deregistration keeps.
func (r *Registration) run(ctx, parent context.Context, needRegister bool) {
	defer close(r.done)
	bo := newBackoff(r.opts.MinBackoff, r.opts.MaxBackoff)
	next := r.currentInterval()
	if needRegister {
		next = min(bo.next(), next)
	}
	for sleep(ctx, next) {
		action := "renew"
		var got *Instance
		var err error
		if needRegister {
			action = "register"
			if r.wasRegistered() {
				action = "reregister"
			}
			got, err = r.c.Register(ctx, r.template())
		} else if err = r.c.Renew(ctx, r.key); IsNotFound(err) {
			action = "reregister"
			got, err = r.c.Register(ctx, r.template())
		}
		if ctx.Err() != nil {
			break // stopping: the failure is the cancellation
		}
		interval := r.currentInterval()
		if err != nil {
			needRegister = needRegister || action != "renew"
			next = min(bo.next(), interval)
			r.record(action, nil, err, next)
			continue
		}
		needRegister = false
		bo.reset()
		r.record(action, got, nil, 0)
		next = r.currentInterval()
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(parent), r.opts.DeregisterTimeout)
	defer cancel()
	_, err := r.c.Deregister(dctx, r.key)
	if IsNotFound(err) {
		err = nil // already gone
	}
	r.mu.Lock()
	r.stopErr = err
	r.mu.Unlock()
	r.record("deregister", nil, err, 0)
}

func (r *Registration) wasRegistered() bool {
	select {
	case <-r.registered:
		return true
	default:
		return false
	}
}

func (r *Registration) template() Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.tmpl.Clone()
}

// Key returns the key of the registered instance.
func (r *Registration) Key() Key { return r.key }

// Instance returns the instance as the server last answered (a copy), or
// nil before the first successful registration.
func (r *Registration) Instance() *Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inst == nil {
		return nil
	}
	c := r.inst.Clone()
	return &c
}

// State returns where the registration stands.
func (r *Registration) State() RegistrationState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Err returns the error of the last attempt, or nil when it succeeded.
func (r *Registration) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// WaitRegistered waits until the instance has been registered once, the
// registration stops, or ctx ends.
func (r *Registration) WaitRegistered(ctx context.Context) error {
	select {
	case <-r.registered:
		return nil
	case <-r.done:
		return errors.New("client: registration stopped before it succeeded")
	case <-ctx.Done():
		if err := r.Err(); err != nil {
			return errors.Join(ctx.Err(), err)
		}
		return ctx.Err()
	}
}

// SetStatus changes the status the instance reports, now and in every
// later re-registration.
func (r *Registration) SetStatus(ctx context.Context, s Status) error {
	r.mu.Lock()
	r.tmpl.Status = s
	r.mu.Unlock()
	got, err := r.c.SetStatus(ctx, r.key, s)
	if err != nil {
		return err
	}
	r.mu.Lock()
	c := got.Clone()
	r.inst = &c
	r.mu.Unlock()
	return nil
}

// Done is closed once the registration has stopped and deregistered.
func (r *Registration) Done() <-chan struct{} { return r.done }

// Stop stops renewing, deregisters the instance (bounded by
// DeregisterTimeout) and returns the deregistration's error. Calling it
// again returns the same result.
func (r *Registration) Stop() error {
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopErr
}
