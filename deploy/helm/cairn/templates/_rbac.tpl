{{/*
What the server's Kubernetes controller may do, and why. deploy/README.md
explains the same rules; internal/kube/deploy_test.go checks them against
the API server's authorizer and a controller running as the ServiceAccount.
Rules on Gateway API and TrafficPolicy kinds are granted whether or not
their CRDs are installed yet: the controller serves them as soon as they
are (after a restart), and a rule on a kind that does not exist grants
nothing.
*/}}

{{/* Rules on namespaced kinds: in a ClusterRole, or a Role per watched namespace. */}}
{{- define "cairn.rules.namespaced" -}}
# Import: Services become registry services. Export: registry services
# (Eureka, API) are written as selector-less Services; only those labelled
# as managed by Cairn are ever changed or deleted.
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, update, delete]
# Import: ready endpoints become instances. Export: the EndpointSlices of
# the exported Services.
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [get, list, watch, create, update, delete]
# Ingresses of Cairn's class become gateway routes ...
- apiGroups: [networking.k8s.io]
  resources: [ingresses]
  verbs: [get, list, watch]
# ... and get the gateway's address in status.loadBalancer.
- apiGroups: [networking.k8s.io]
  resources: [ingresses/status]
  verbs: [update]
# Gateways and routes become gateway routes; ReferenceGrants allow a route
# to name a backend in another namespace.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, httproutes, grpcroutes, referencegrants]
  verbs: [get, list, watch]
# Conditions (Accepted, ResolvedRefs, Programmed) and addresses written back.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways/status, httproutes/status, grpcroutes/status]
  verbs: [update]
# TrafficPolicies (retries, timeouts, ...) attached to Services and routes ...
- apiGroups: [cairn.dev]
  resources: [trafficpolicies]
  verbs: [get, list, watch]
# ... and whether each was applied, in its status.
- apiGroups: [cairn.dev]
  resources: [trafficpolicies/status]
  verbs: [patch]
{{- end -}}

{{/* Rules on cluster-scoped kinds: always in a ClusterRole. */}}
{{- define "cairn.rules.clusterScoped" -}}
# Gateway listeners admit routes from namespaces chosen by their labels
# (allowedRoutes.namespaces.selector).
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
# Which IngressClasses name Cairn's controller (and which is the default).
- apiGroups: [networking.k8s.io]
  resources: [ingressclasses]
  verbs: [get, list, watch]
# GatewayClasses naming Cairn's controllerName are accepted ...
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses]
  verbs: [get, list, watch]
# ... with their Accepted condition written back.
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses/status]
  verbs: [update]
{{- end -}}

{{/* The Lease the replicas elect their leader with (only the leader writes). */}}
{{- define "cairn.leaseName" -}}
{{- printf "%s-controller" (include "cairn.fullname" .) -}}
{{- end -}}
