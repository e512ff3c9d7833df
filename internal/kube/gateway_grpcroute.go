package kube

import (
	"regexp"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// grpcAsHTTP restates a GRPCRoute as the HTTPRoute a gRPC request meets:
// gRPC calls are HTTP/2 POSTs to "/<service>/<method>", so a method match
// is a path match (Exact service and method: that exact path; service
// only: the path prefix "/<service>"; method only, or RegularExpression:
// a regular expression over the path), and header matches are header
// matches. Filters keep their type (none is one Cairn applies, so they
// make the rule answer errors, as on HTTPRoutes). The translation is then
// the HTTPRoute's, with HTTP/2 to the backends.
func grpcAsHTTP(gr *gatewayv1.GRPCRoute) *gatewayv1.HTTPRoute {
	hr := &gatewayv1.HTTPRoute{ObjectMeta: gr.ObjectMeta,
		Spec: gatewayv1.HTTPRouteSpec{CommonRouteSpec: gr.Spec.CommonRouteSpec, Hostnames: gr.Spec.Hostnames}}
	for _, r := range gr.Spec.Rules {
		rule := gatewayv1.HTTPRouteRule{SessionPersistence: r.SessionPersistence, Filters: grpcFilters(r.Filters)}
		for _, m := range r.Matches {
			hm := gatewayv1.HTTPRouteMatch{Path: grpcPath(m.Method)}
			for _, h := range m.Headers {
				hm.Headers = append(hm.Headers, gatewayv1.HTTPHeaderMatch{Type: (*gatewayv1.HeaderMatchType)(h.Type),
					Name: gatewayv1.HTTPHeaderName(h.Name), Value: h.Value})
			}
			rule.Matches = append(rule.Matches, hm)
		}
		for _, b := range r.BackendRefs {
			rule.BackendRefs = append(rule.BackendRefs, gatewayv1.HTTPBackendRef{BackendRef: b.BackendRef, Filters: grpcFilters(b.Filters)})
		}
		hr.Spec.Rules = append(hr.Spec.Rules, rule)
	}
	return hr
}

// grpcPath is the path match of a gRPC method match (nil: every path).
func grpcPath(m *gatewayv1.GRPCMethodMatch) *gatewayv1.HTTPPathMatch {
	if m == nil || (ptrValue(m.Service) == "" && ptrValue(m.Method) == "") {
		return nil
	}
	svc, method := ptrValue(m.Service), ptrValue(m.Method)
	path := func(t gatewayv1.PathMatchType, v string) *gatewayv1.HTTPPathMatch {
		return &gatewayv1.HTTPPathMatch{Type: &t, Value: &v}
	}
	if m.Type != nil && *m.Type == gatewayv1.GRPCMethodMatchRegularExpression {
		if svc == "" {
			svc = "[^/]+"
		}
		if method == "" {
			method = "[^/]+"
		}
		return path(gatewayv1.PathMatchRegularExpression, "/(?:"+svc+")/(?:"+method+")")
	}
	switch {
	case method == "":
		return path(gatewayv1.PathMatchPathPrefix, "/"+svc)
	case svc == "":
		return path(gatewayv1.PathMatchRegularExpression, "/[^/]+/"+regexp.QuoteMeta(method))
	}
	return path(gatewayv1.PathMatchExact, "/"+svc+"/"+method)
}

// grpcFilters restates gRPC filters as HTTP ones of the same type.
func grpcFilters(fs []gatewayv1.GRPCRouteFilter) []gatewayv1.HTTPRouteFilter {
	var out []gatewayv1.HTTPRouteFilter
	for _, f := range fs {
		out = append(out, gatewayv1.HTTPRouteFilter{Type: gatewayv1.HTTPRouteFilterType(f.Type)})
	}
	return out
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
