package registry

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/cairnhq/cairn/internal/config"
)

// op is one logged change. Exactly one field is set.
type op struct {
	PutService     *Service         `json:"ps,omitempty"`
	DeleteService  *ServiceKey      `json:"ds,omitempty"`
	PutInstance    *Instance        `json:"pi,omitempty"`
	DeleteInstance *InstanceKey     `json:"di,omitempty"`
	PutConfig      *config.Document `json:"pc,omitempty"`
	DeleteConfig   *config.Key      `json:"dc,omitempty"`
}

// record is what one mutation writes to the log.
type record struct {
	Rev int64 `json:"rev"`
	Ops []op  `json:"ops"`
}

func encodeRecord(m *mutation) []byte {
	b, err := json.Marshal(record{Rev: m.rev, Ops: m.ops})
	if err != nil {
		// Every type here is plain data; failing to encode is a programming error.
		panic(fmt.Sprintf("registry: encoding log record: %v", err))
	}
	return b
}

// snapshotHeader opens a snapshot file; the services, instances and config
// documents follow, in that order, as one JSON value per line, so a large
// registry streams in and out. A snapshot written before documents existed
// has no "configs" and reads as none.
type snapshotHeader struct {
	Version   int   `json:"version"`
	Revision  int64 `json:"revision"`
	Services  int   `json:"services"`
	Instances int   `json:"instances"`
	Configs   int   `json:"configs,omitempty"`
}

// restore rebuilds the state from the log. Restored leases count from now:
// renewals are not logged, so the last renewal time before the crash is
// unknown, and every instance gets a full lease (and the restore grace) to
// renew before it can be evicted.
func (r *Registry) restore() error {
	now := r.cfg.Now()
	snap := func(rd io.Reader) error {
		dec := json.NewDecoder(rd)
		var h snapshotHeader
		if err := dec.Decode(&h); err != nil {
			return err
		}
		if h.Version != 1 {
			return fmt.Errorf("unsupported snapshot version %d", h.Version)
		}
		r.rev = h.Revision
		for i := 0; i < h.Services; i++ {
			var s Service
			if err := dec.Decode(&s); err != nil {
				return err
			}
			r.applyOp(op{PutService: &s}, now)
		}
		for i := 0; i < h.Instances; i++ {
			var in Instance
			if err := dec.Decode(&in); err != nil {
				return err
			}
			r.applyOp(op{PutInstance: &in}, now)
		}
		for i := 0; i < h.Configs; i++ {
			var d config.Document
			if err := dec.Decode(&d); err != nil {
				return err
			}
			r.applyOp(op{PutConfig: &d}, now)
		}
		return nil
	}
	rec := func(data []byte) error {
		var rc record
		if err := json.Unmarshal(data, &rc); err != nil {
			return err
		}
		if rc.Rev <= r.rev {
			return nil // already in the snapshot
		}
		for _, o := range rc.Ops {
			r.applyOp(o, now)
		}
		r.rev = rc.Rev
		return nil
	}
	return r.wal.Replay(snap, rec)
}

// applyOp applies a logged op to the maps (restore only).
func (r *Registry) applyOp(o op, now time.Time) {
	switch {
	case o.PutService != nil:
		s := o.PutService
		if se := r.services[s.Key()]; se != nil {
			se.svc = s
		} else {
			r.services[s.Key()] = &svcEntry{svc: s, instances: map[string]*instEntry{}}
		}
	case o.DeleteService != nil:
		if se := r.services[*o.DeleteService]; se != nil {
			for _, e := range se.instances {
				r.untrack(e.inst)
			}
			delete(r.services, *o.DeleteService)
		}
	case o.PutInstance != nil:
		in := o.PutInstance
		se := r.services[in.Key().ServiceKey()]
		if se == nil { // cannot happen in a well-formed log; keep the instance anyway
			se = &svcEntry{svc: &Service{Namespace: in.Namespace, Name: in.Service}, instances: map[string]*instEntry{}}
			r.services[in.Key().ServiceKey()] = se
		}
		if old := se.instances[in.ID]; old != nil {
			r.untrack(old.inst)
		}
		e := &instEntry{inst: in, since: now.UnixNano()}
		e.lastRenew.Store(now.UnixNano())
		se.instances[in.ID] = e
		r.track(in)
	case o.DeleteInstance != nil:
		k := *o.DeleteInstance
		if se := r.services[k.ServiceKey()]; se != nil {
			if e := se.instances[k.ID]; e != nil {
				r.untrack(e.inst)
				delete(se.instances, k.ID)
			}
		}
	case o.PutConfig != nil:
		r.configs[o.PutConfig.Key()] = o.PutConfig
	case o.DeleteConfig != nil:
		delete(r.configs, *o.DeleteConfig)
	}
}

// maybeCompact snapshots the state in the background once the log has
// grown past CompactBytes and past twice the last snapshot: a snapshot of a
// large registry costs seconds of CPU, so its cost is spread over at least
// as many bytes of log as it writes (replay stays bounded at ~3x the state).
func (r *Registry) maybeCompact() {
	if r.wal == nil {
		return
	}
	if n := r.wal.Written(); n < r.cfg.CompactBytes || n < 2*r.lastSnapBytes.Load() {
		return
	}
	if !r.compacting.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer r.compacting.Store(false)
		if err := r.Compact(); err != nil {
			r.log.Error("compaction failed", "err", err)
		}
	}()
}

// Compact writes a snapshot of the current state and drops the log it
// replaces. Writers are held only while the state's pointers are copied.
func (r *Registry) Compact() error {
	if r.wal == nil {
		return nil
	}
	start := time.Now()
	r.mu.Lock()
	seq := r.wal.Rotate()
	h := snapshotHeader{Version: 1, Revision: r.rev, Services: len(r.services), Instances: r.total, Configs: len(r.configs)}
	svcs := make([]*Service, 0, len(r.services))
	insts := make([]*Instance, 0, r.total)
	for _, se := range r.services {
		svcs = append(svcs, se.svc)
		for _, e := range se.instances {
			insts = append(insts, e.inst)
		}
	}
	docs := make([]*config.Document, 0, len(r.configs))
	for _, d := range r.configs {
		docs = append(docs, d)
	}
	r.mu.Unlock()
	var size countingWriter
	err := r.wal.WriteSnapshot(seq, func(w io.Writer) error {
		size.w = w
		bw := bufio.NewWriter(&size)
		enc := json.NewEncoder(bw)
		if err := enc.Encode(h); err != nil {
			return err
		}
		for _, s := range svcs {
			if err := enc.Encode(s); err != nil {
				return err
			}
		}
		for _, in := range insts {
			if err := enc.Encode(in); err != nil {
				return err
			}
		}
		for _, d := range docs {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		return bw.Flush()
	})
	if err == nil {
		r.lastSnapBytes.Store(size.n)
		r.log.Info("compacted log", "bytes", size.n, "revision", h.Revision, "instances", h.Instances, "took", time.Since(start))
	}
	return err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
