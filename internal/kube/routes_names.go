package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/cairnhq/cairn/internal/config"
)

// Labels on the Route documents the route controller writes. A document
// is the controller's when it has LabelManagedBy = ManagedByKubernetes and
// an origin kind the controller makes; it never touches any other.
const (
	LabelOriginKind      = "cairn.dev/origin-kind"
	LabelOriginNamespace = "cairn.dev/origin-namespace"
	LabelOriginName      = "cairn.dev/origin-name"
)

// Origin kinds, as the LabelOriginKind label says.
const (
	kindIngress   = "Ingress"
	kindHTTPRoute = "HTTPRoute"
	kindGRPCRoute = "GRPCRoute"
)

// originLabels are the labels of a document made from an object.
func originLabels(o objectRef) map[string]string {
	return map[string]string{
		config.LabelManagedBy: config.ManagedByKubernetes,
		LabelOriginKind:       o.Kind,
		LabelOriginNamespace:  o.Namespace,
		LabelOriginName:       o.Name,
	}
}

// ownedByRoutes reports whether a stored document was made by the route
// controller (of this or an earlier run), so it may be replaced or deleted.
func ownedByRoutes(d *config.Document) bool {
	l := d.Metadata.Labels
	if l[config.LabelManagedBy] != config.ManagedByKubernetes {
		return false
	}
	switch l[LabelOriginKind] {
	case kindIngress, kindHTTPRoute, kindGRPCRoute:
		return true
	}
	return false
}

// maxNameLen is the longest document name (a DNS label).
const maxNameLen = 63

// docName builds a document name "<prefix>-<name>-<suffix>" that is a DNS
// label of at most 63 characters. name is an object's name (a DNS
// subdomain, up to 253 characters); when it is not a DNS label as it is,
// or too long, it is shortened and followed by a hash of the original, so
// different names never share a document name. prefix and suffix are
// fixed-width, so names sort as their parts do.
func docName(prefix, name, suffix string) string {
	room := maxNameLen - len(prefix) - len(suffix) - 2
	clean := labelChars(name)
	if clean == name && len(clean) <= room {
		return prefix + "-" + clean + "-" + suffix
	}
	sum := sha256.Sum256([]byte(name))
	h := hex.EncodeToString(sum[:4])
	keep := room - len(h) - 1
	if len(clean) > keep {
		clean = clean[:keep]
	}
	clean = strings.Trim(clean, "-")
	if clean == "" {
		return prefix + "-" + h + "-" + suffix
	}
	return prefix + "-" + clean + "-" + h + "-" + suffix
}

// labelChars lower-cases s and replaces what a DNS label may not hold
// ('.' in subdomains) with '-'.
func labelChars(s string) string {
	b := []byte(strings.ToLower(s))
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	return strings.Trim(string(b), "-")
}

// index2 is a rule or match index as a suffix part: two digits, so that
// the documents of one object sort in rule order (HTTPRoutes have at most
// 16 rules of at most 64 matches; longer Ingresses get three digits, and
// names stay unique because the suffix is always two numbers).
func index2(i int) string { return fmt.Sprintf("%02d", i) }

// creationKey encodes a creation time as 7 base-36 digits (seconds since
// 1970, enough until the year 4453), so that names beginning with it sort
// oldest first: the Gateway API's tie-break between routes.
func creationKey(t time.Time) string {
	s := strconv.FormatInt(max(t.Unix(), 0), 36)
	if len(s) < 7 {
		s = strings.Repeat("0", 7-len(s)) + s
	}
	return s
}

// ingressDocName names the document of an Ingress rule's path.
func ingressDocName(name string, rule, path int) string {
	return docName("ing", name, index2(rule)+"-"+index2(path))
}

// ingressDefaultDocName names an Ingress's default-backend documents: d0
// for any host, d1 for the hosts of its rules.
func ingressDefaultDocName(name string, hosts bool) string {
	if hosts {
		return docName("ing", name, "d1")
	}
	return docName("ing", name, "d0")
}

// routeDocName names the document of an HTTPRoute's (or GRPCRoute's)
// rule's match; the route's creation time comes first so that ties in the
// router's order go to the older route.
func routeDocName(kind, name string, created time.Time, rule, match int) string {
	prefix := "hr-"
	if kind == kindGRPCRoute {
		prefix = "gr-"
	}
	return docName(prefix+creationKey(created), name, index2(rule)+"-"+index2(match))
}
