package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/cairnhq/cairn/internal/kube"
	"github.com/cairnhq/cairn/internal/registry"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
)

// kubeFlags are the --kubernetes and --kube-* flags of `cairn server`.
type kubeFlags struct {
	enabled       bool
	kubeconfig    string
	namespaces    string
	exportNS      string
	exportPrefix  string
	exportLabel   string
	ingressClass  string
	gwController  string
	statusAddress string
	leaseNS       string
	leaseName     string
	identity      string
	leaseDuration time.Duration
}

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&k.enabled, "kubernetes", false, "sync with Kubernetes: import Services/EndpointSlices, export registry services, serve Ingress, Gateway API and TrafficPolicies")
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig FILE (default: $KUBECONFIG, else the in-cluster service account)")
	fs.StringVar(&k.namespaces, "kube-namespaces", "", "namespaces to watch, comma-separated (default: the whole cluster)")
	fs.StringVar(&k.exportNS, "kube-export-namespaces", "", "export registry services of these namespaces to Kubernetes, comma-separated")
	fs.StringVar(&k.exportPrefix, "kube-export-prefixes", "", "export registry services whose names start with one of these prefixes, comma-separated")
	fs.StringVar(&k.exportLabel, "kube-export-label", "cairn.dev/export", "export registry services whose metadata sets this key to \"true\"")
	fs.StringVar(&k.ingressClass, "kube-ingress-class", "cairn", "ingressClassName of the Ingresses the gateway serves")
	fs.StringVar(&k.gwController, "kube-gateway-controller", "cairn.dev/gateway-controller", "controllerName of the GatewayClasses the gateway serves")
	fs.StringVar(&k.statusAddress, "kube-status-address", "", "the gateway's address (IP or host name) written to Ingress and Gateway status")
	fs.StringVar(&k.leaseNS, "kube-lease-namespace", "", "namespace of the leader-election Lease (default: $POD_NAMESPACE, else the first watched namespace, else default)")
	fs.StringVar(&k.leaseName, "kube-lease-name", "cairn-controller", "name of the leader-election Lease")
	fs.StringVar(&k.identity, "kube-identity", "", "this replica's leader-election identity (default: $POD_NAME, else the host name)")
	fs.DurationVar(&k.leaseDuration, "kube-lease-duration", 15*time.Second, "how long a leader's Lease lasts without renewal (renewed every third of it)")
}

func (k *kubeFlags) validate() error {
	if !k.enabled {
		return nil
	}
	for _, ns := range splitList(k.namespaces) {
		if fe := registry.ValidateName("--kube-namespaces", ns); fe != nil {
			return fe
		}
	}
	for _, ns := range splitList(k.exportNS) {
		if fe := registry.ValidateName("--kube-export-namespaces", ns); fe != nil {
			return fe
		}
	}
	if k.leaseDuration < 3*time.Second {
		return errors.New("--kube-lease-duration must be at least 3s")
	}
	if k.ingressClass == "" || k.gwController == "" || k.leaseName == "" {
		return errors.New("--kube-ingress-class, --kube-gateway-controller and --kube-lease-name must not be empty")
	}
	return nil
}

func (k *kubeFlags) options() kube.Options {
	id := k.identity
	if id == "" {
		id = os.Getenv("POD_NAME")
	}
	return kube.Options{
		Namespaces: splitList(k.namespaces),
		Export: kube.ExportRule{
			Namespaces: splitList(k.exportNS),
			Prefixes:   splitList(k.exportPrefix),
			Label:      k.exportLabel,
		},
		IngressClass:      k.ingressClass,
		GatewayController: k.gwController,
		StatusAddress:     k.statusAddress,
		LeaseNamespace:    k.leaseNS,
		LeaseName:         k.leaseName,
		Identity:          id,
		LeaseDuration:     k.leaseDuration,
		RenewDeadline:     k.leaseDuration * 2 / 3,
		RetryPeriod:       k.leaseDuration / 7,
	}
}

func (k *kubeFlags) describe() string {
	ns := "all namespaces"
	if k.namespaces != "" {
		ns = "namespaces " + k.namespaces
	}
	return ns
}

// start runs the Kubernetes controller; it fails when the API server
// cannot be reached, and reports a later failure on errc.
func (k *kubeFlags) start(ctx context.Context, reg *registry.Registry, pr prometheus.Registerer, logger *slog.Logger, errc chan<- error) (*rest.Config, error) {
	cfg, err := kube.RESTConfig(k.kubeconfig)
	if err != nil {
		return nil, err
	}
	// client-go logs through klog, in its own text format on stderr: send
	// it to Cairn's logger instead, so JSON logs stay JSON.
	klog.SetSlogLogger(logger.With("component", "client-go"))
	o := k.options()
	o.Registry, o.Config, o.Logger, o.Metrics = reg, cfg, logger, pr
	c, err := kube.New(o)
	if err != nil {
		return nil, err
	}
	failed := make(chan error, 1)
	go func() { failed <- c.Run(ctx) }()
	// Readers should not see a half-imported cluster as the whole truth,
	// but an API server that is slow to sync must not keep the rest of
	// Cairn down: wait a bounded time, then go on.
	select {
	case <-c.Ready():
	case err := <-failed:
		if err == nil {
			err = ctx.Err()
		}
		return nil, err
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
		logger.Warn("kubernetes: not in sync after 30s; serving meanwhile")
	}
	go func() {
		if err := <-failed; err != nil {
			errc <- fmt.Errorf("kubernetes: %w", err)
		}
	}()
	return cfg, nil
}
