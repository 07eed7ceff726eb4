package validate

import (
	"fmt"
	"strings"
	"testing"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/yaml"
)

// TestAKSPodMonitor checks the Prometheus Operator PodMonitor of the AKS example, decoded
// strictly into the Operator's own API type: it must select the pods of the Deployment in
// examples/aks/encfs-aks.yaml, and scrape /metrics on the sidecar's named port, the one its
// --metrics-addr listens on (not loopback).
func TestAKSPodMonitor(t *testing.T) {
	const file = "examples/aks/encfs-podmonitor.yaml"
	var pm monitoringv1.PodMonitor
	if err := yaml.UnmarshalStrict(readFile(t, file), &pm); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	if pm.APIVersion != "monitoring.coreos.com/v1" || pm.Kind != "PodMonitor" {
		t.Fatalf("%s: apiVersion/kind %s %s; want monitoring.coreos.com/v1 PodMonitor", file, pm.APIVersion, pm.Kind)
	}
	if pm.Name == "" {
		t.Errorf("%s: metadata.name is required", file)
	}

	_, pods := decodeManifest(t, "examples/aks/encfs-aks.yaml")
	if len(pods) != 1 {
		t.Fatalf("examples/aks/encfs-aks.yaml: %d pod templates; want 1", len(pods))
	}
	pod := pods[0]
	sel, err := metav1LabelSelector(pm)
	if err != nil {
		t.Fatalf("%s: spec.selector: %v", file, err)
	}
	if sel.Empty() || !sel.Matches(labels.Set(pod.Labels)) {
		t.Errorf("%s: spec.selector %s does not select the Deployment's pods (labels %v)", file, sel, pod.Labels)
	}

	// The sidecar's metrics port, by name and number.
	ports := map[string]int32{}
	var metricsPort string
	for _, c := range pod.Spec.Containers {
		argv := append(append([]string{}, c.Command...), c.Args...)
		if !isEncfsMount(argv) {
			continue
		}
		addr, _ := flagValue(argv, "--metrics-addr")
		_, metricsPort, _ = strings.Cut(addr, ":")
		for _, p := range c.Ports {
			ports[p.Name] = p.ContainerPort
		}
	}
	if len(pm.Spec.PodMetricsEndpoints) == 0 {
		t.Fatalf("%s: no podMetricsEndpoints", file)
	}
	for i, ep := range pm.Spec.PodMetricsEndpoints {
		where := fmt.Sprintf("%s: podMetricsEndpoints[%d]", file, i)
		if ep.Port == nil || *ep.Port == "" {
			t.Errorf("%s: give the sidecar's port by name (port: metrics)", where)
			continue
		}
		n, ok := ports[*ep.Port]
		if !ok {
			t.Errorf("%s: port %q is not a named port of the encfs sidecar (%v)", where, *ep.Port, ports)
		} else if fmt.Sprint(n) != metricsPort {
			t.Errorf("%s: port %q is %d, but the sidecar's --metrics-addr listens on %s", where, *ep.Port, n, metricsPort)
		}
		if ep.Path != "" && ep.Path != "/metrics" {
			t.Errorf("%s: path %q; encfs serves /metrics", where, ep.Path)
		}
		if ep.Scheme != nil && strings.ToLower(ep.Scheme.String()) != "http" {
			t.Errorf("%s: scheme %s; encfs serves plain HTTP", where, ep.Scheme.String())
		}
	}
}

func metav1LabelSelector(pm monitoringv1.PodMonitor) (labels.Selector, error) {
	return metav1.LabelSelectorAsSelector(&pm.Spec.Selector)
}
