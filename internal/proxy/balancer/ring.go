package balancer

import (
	"slices"
	"strconv"
)

// buildRing places each endpoint on a hash ring 100 times per unit of
// weight (relative to the lightest endpoint), scaled down only if the ring
// would pass 65,536 points. A key goes to the first point at or after its
// hash. An endpoint's points do not depend on the others, so adding or
// removing one endpoint moves only the keys of its own points.
func buildRing(eps []*Endpoint) []ringPoint {
	if len(eps) == 0 {
		return nil
	}
	const perWeight, maxRing = 100, 65536
	minW := eps[0].weight()
	for _, e := range eps {
		minW = min(minW, e.weight())
	}
	total := 0.0
	for _, e := range eps {
		total += perWeight * float64(e.weight()) / float64(minW)
	}
	scale := min(1, maxRing/total)
	ring := make([]ringPoint, 0, int(total*scale)+len(eps))
	for i, e := range eps {
		n := max(int(perWeight*float64(e.weight())/float64(minW)*scale+0.5), 1)
		for j := range n {
			ring = append(ring, ringPoint{hash: HashKey(e.Addr + "_" + strconv.Itoa(j)), ep: uint32(i)})
		}
	}
	slices.SortFunc(ring, func(a, b ringPoint) int {
		switch {
		case a.hash < b.hash:
			return -1
		case a.hash > b.hash:
			return 1
		}
		return int(a.ep) - int(b.ep)
	})
	return ring
}

// ringIndex is the first point at or after key, wrapping around.
func (p *pool) ringIndex(key uint64) int {
	i, _ := slices.BinarySearchFunc(p.ring, key, func(pt ringPoint, k uint64) int {
		switch {
		case pt.hash < k:
			return -1
		case pt.hash > k:
			return 1
		}
		return 0
	})
	if i == len(p.ring) {
		return 0
	}
	return i
}

// HashKey hashes a request's key (a header or cookie value, a client IP)
// for ring hashing: FNV-1a, then a 64-bit finalizer so that similar keys
// spread over the whole ring.
func HashKey(s string) uint64 {
	x := uint64(14695981039346656037) // FNV-1a, inline: no allocation per request
	for i := 0; i < len(s); i++ {
		x ^= uint64(s[i])
		x *= 1099511628211
	}
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	x *= 0xc4ceb9fe1a85ec53
	x ^= x >> 33
	return x
}
