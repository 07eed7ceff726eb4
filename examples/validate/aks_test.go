package validate

import (
	"bytes"
	"fmt"
	"net"
	"path"
	"regexp"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

var docSep = regexp.MustCompile(`(?m)^---\s*$`)

// decodeManifest strictly decodes every document of a multi-document YAML file into its
// Kubernetes API type (unknown fields, wrong types and duplicate keys fail).
func decodeManifest(t *testing.T, file string) (sas []*corev1.ServiceAccount, pods []*corev1.PodTemplateSpec) {
	t.Helper()
	for i, doc := range docSep.Split(string(readFile(t, file)), -1) {
		if strings.TrimSpace(stripComments(doc)) == "" {
			continue
		}
		var tm struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
		}
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatalf("%s document %d: %v", file, i, err)
		}
		where := fmt.Sprintf("%s document %d (%s)", file, i, tm.Kind)
		var obj any
		switch tm.APIVersion + " " + tm.Kind {
		case "v1 ServiceAccount":
			obj = &corev1.ServiceAccount{}
		case "v1 Pod":
			obj = &corev1.Pod{}
		case "apps/v1 Deployment":
			obj = &appsv1.Deployment{}
		case "v1 ConfigMap":
			obj = &corev1.ConfigMap{}
		default:
			t.Errorf("%s: unexpected apiVersion/kind %s %s", where, tm.APIVersion, tm.Kind)
			continue
		}
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Errorf("%s: %v", where, err)
			continue
		}
		switch o := obj.(type) {
		case *corev1.ServiceAccount:
			sas = append(sas, o)
		case *corev1.Pod:
			pods = append(pods, &corev1.PodTemplateSpec{ObjectMeta: o.ObjectMeta, Spec: o.Spec})
		case *appsv1.Deployment:
			pods = append(pods, &o.Spec.Template)
			if o.Spec.Selector == nil {
				t.Errorf("%s: spec.selector is required", where)
				continue
			}
			for k, v := range o.Spec.Selector.MatchLabels {
				if o.Spec.Template.Labels[k] != v {
					t.Errorf("%s: selector %s=%s does not match the pod template's labels", where, k, v)
				}
			}
		}
	}
	return sas, pods
}

func stripComments(doc string) string {
	var b bytes.Buffer
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestAKSManifest checks the AKS confidential containers manifest: Kata CC runtime class and
// policy annotation, the encfs sidecar privileged with Bidirectional propagation and a readiness
// probe on /readyz served by --metrics-addr on a non-loopback address, consumers on the same
// emptyDir with HostToContainer, and agreement with the example configuration.
func TestAKSManifest(t *testing.T) {
	for _, file := range []string{"examples/aks/encfs-aks.yaml", "examples/aks/encfs-skr-aks.yaml"} {
		t.Run(path.Base(file), func(t *testing.T) { checkAKSManifest(t, file) })
	}
}

func checkAKSManifest(t *testing.T, file string) *corev1.PodTemplateSpec {
	sas, pods := decodeManifest(t, file)
	if len(pods) != 1 {
		t.Fatalf("%s: %d pod templates; want 1", file, len(pods))
		return nil
	}
	pod := pods[0]
	spec := pod.Spec
	if spec.RuntimeClassName == nil || *spec.RuntimeClassName != "kata-cc-isolation" {
		t.Errorf("%s: runtimeClassName must be kata-cc-isolation (AKS confidential containers)", file)
	}
	if _, ok := pod.Annotations["io.katacontainers.config.agent.policy"]; !ok {
		t.Errorf("%s: no io.katacontainers.config.agent.policy annotation for az confcom katapolicygen to fill", file)
	}
	if spec.ServiceAccountName != "" {
		found := false
		for _, sa := range sas {
			if sa.Name == spec.ServiceAccountName {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: serviceAccountName %s is not defined in the file", file, spec.ServiceAccountName)
		}
	}
	for _, v := range spec.Volumes {
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			t.Errorf("%s: volume name %q: %s", file, v.Name, msg)
		}
	}
	emptyDirs := map[string]bool{}
	for _, v := range spec.Volumes {
		if v.EmptyDir != nil {
			emptyDirs[v.Name] = true
		}
	}

	cfg := exampleConfig(t)
	wantDir := path.Dir(cfg.AzureFilesystems[0].MountPoint)
	var sidecar *corev1.Container
	for i := range spec.Containers {
		c := &spec.Containers[i]
		for _, msg := range validation.IsDNS1123Label(c.Name) {
			t.Errorf("%s: container name %q: %s", file, c.Name, msg)
		}
		if isEncfsMount(append(append([]string{}, c.Command...), c.Args...)) {
			sidecar = c
		}
	}
	if sidecar == nil {
		t.Fatalf("%s: no container runs `encfs mount --config-env EncfsSideCarArgs`", file)
	}
	argv := append(append([]string{}, sidecar.Command...), sidecar.Args...)
	env := false
	for _, e := range sidecar.Env {
		if e.Name == "EncfsSideCarArgs" {
			env = true
		}
	}
	if !env {
		t.Errorf("%s: the sidecar has no EncfsSideCarArgs environment variable", file)
	}
	if sc := sidecar.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
		t.Errorf("%s: the sidecar must be privileged (FUSE mount, Bidirectional propagation)", file)
	}

	// Readiness: /readyz on the port of --metrics-addr, which must not be loopback.
	addr, ok := flagValue(argv, "--metrics-addr")
	if !ok {
		t.Errorf("%s: the sidecar has no --metrics-addr, so nothing serves /readyz", file)
	} else {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Errorf("%s: --metrics-addr %q: %v", file, addr, err)
		}
		if ip := net.ParseIP(host); host == "" || host == "localhost" || (ip != nil && ip.IsLoopback()) {
			// encfs reads a bare :PORT as localhost, unlike net.Listen.
			t.Errorf("%s: --metrics-addr %s listens on loopback only (encfs reads a bare :PORT as localhost); the kubelet probes the pod IP: use 0.0.0.0:PORT", file, addr)
		}
		rp := sidecar.ReadinessProbe
		if rp == nil || rp.HTTPGet == nil || rp.HTTPGet.Path != "/readyz" {
			t.Errorf("%s: the sidecar needs readinessProbe.httpGet.path /readyz", file)
		} else {
			probePort := rp.HTTPGet.Port.String()
			for _, p := range sidecar.Ports {
				if p.Name == probePort {
					probePort = fmt.Sprint(p.ContainerPort)
				}
			}
			if probePort != port {
				t.Errorf("%s: readiness probe port %s is not the --metrics-addr port %s", file, rp.HTTPGet.Port.String(), port)
			}
		}
	}

	var shared string
	for _, vm := range sidecar.VolumeMounts {
		if !emptyDirs[vm.Name] {
			continue
		}
		shared = vm.Name
		if vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationBidirectional {
			t.Errorf("%s: the sidecar's mount of %s needs mountPropagation: Bidirectional", file, vm.Name)
		}
		if vm.MountPath != wantDir {
			t.Errorf("%s: the sidecar mounts %s at %s; the example configuration's mount_point needs %s", file, vm.Name, vm.MountPath, wantDir)
		}
	}
	if shared == "" {
		t.Fatalf("%s: the sidecar mounts no emptyDir volume", file)
	}
	consumers := 0
	for _, c := range spec.Containers {
		if c.Name == sidecar.Name {
			continue
		}
		for _, vm := range c.VolumeMounts {
			if vm.Name != shared {
				continue
			}
			consumers++
			if vm.MountPropagation == nil || *vm.MountPropagation != corev1.MountPropagationHostToContainer {
				t.Errorf("%s: consumer %s needs mountPropagation: HostToContainer on %s", file, c.Name, vm.Name)
			}
			if vm.MountPath != wantDir {
				t.Errorf("%s: consumer %s mounts %s at %s; want %s", file, c.Name, vm.Name, vm.MountPath, wantDir)
			}
			checkConsumerScript(t, file+" consumer "+c.Name, append(append([]string{}, c.Command...), c.Args...), cfg.AzureFilesystems[0].MountPoint)
		}
	}
	if consumers == 0 {
		t.Errorf("%s: no consumer container shares volume %s with the sidecar", file, shared)
	}
	return pod
}
