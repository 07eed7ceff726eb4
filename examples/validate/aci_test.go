package validate

import (
	"bytes"
	"encoding/json"
	"os/exec"
	"path"
	"regexp"
	"strings"
	"testing"
)

// The ARM shapes the example uses, decoded strictly so that a misspelt property fails here and
// not at deployment. (ARM property names are case-insensitive, as encoding/json's are.)
type armTemplate struct {
	Schema         string                     `json:"$schema"`
	ContentVersion string                     `json:"contentVersion"`
	Metadata       map[string]any             `json:"metadata"`
	Parameters     map[string]armParameter    `json:"parameters"`
	Variables      map[string]json.RawMessage `json:"variables"`
	Resources      []armContainerGroup        `json:"resources"`
	Outputs        map[string]json.RawMessage `json:"outputs"`
}

type armParameter struct {
	Type         string          `json:"type"`
	DefaultValue json.RawMessage `json:"defaultValue"`
	Metadata     map[string]any  `json:"metadata"`
}

type armContainerGroup struct {
	Type       string `json:"type"`
	APIVersion string `json:"apiVersion"`
	Name       string `json:"name"`
	Location   string `json:"location"`
	Identity   *struct {
		Type                   string                     `json:"type"`
		UserAssignedIdentities map[string]json.RawMessage `json:"userAssignedIdentities"`
	} `json:"identity"`
	Properties struct {
		SKU                           string `json:"sku"`
		ConfidentialComputeProperties *struct {
			CCEPolicy *string `json:"ccePolicy"`
		} `json:"confidentialComputeProperties"`
		OSType        string         `json:"osType"`
		RestartPolicy string         `json:"restartPolicy"`
		Containers    []armContainer `json:"containers"`
		Volumes       []struct {
			Name     string          `json:"name"`
			EmptyDir json.RawMessage `json:"emptyDir"`
			Secret   json.RawMessage `json:"secret"`
		} `json:"volumes"`
		IPAddress                json.RawMessage `json:"ipAddress"`
		ImageRegistryCredentials json.RawMessage `json:"imageRegistryCredentials"`
	} `json:"properties"`
}

type armContainer struct {
	Name       string `json:"name"`
	Properties struct {
		Image                string   `json:"image"`
		Command              []string `json:"command"`
		EnvironmentVariables []struct {
			Name        string  `json:"name"`
			Value       *string `json:"value"`
			SecureValue *string `json:"secureValue"`
		} `json:"environmentVariables"`
		SecurityContext *struct {
			Privileged   *bool           `json:"privileged"`
			Capabilities json.RawMessage `json:"capabilities"`
		} `json:"securityContext"`
		Resources struct {
			Requests struct {
				CPU        float64 `json:"cpu"`
				MemoryInGB float64 `json:"memoryInGB"`
			} `json:"requests"`
			Limits json.RawMessage `json:"limits"`
		} `json:"resources"`
		Ports        json.RawMessage `json:"ports"`
		VolumeMounts []struct {
			Name      string `json:"name"`
			MountPath string `json:"mountPath"`
			ReadOnly  bool   `json:"readOnly"`
		} `json:"volumeMounts"`
	} `json:"properties"`
}

func decodeStrict(t *testing.T, name string, b []byte, v any) {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if d.More() {
		t.Fatalf("%s: data after the JSON document", name)
	}
}

func exampleConfig(t *testing.T) sidecarConfig {
	t.Helper()
	var c sidecarConfig
	if err := json.Unmarshal(readFile(t, "examples/config/encfs-sidecar-args.json"), &c); err != nil {
		t.Fatalf("examples/config/encfs-sidecar-args.json: %v", err)
	}
	if len(c.AzureFilesystems) == 0 {
		t.Fatal("examples/config/encfs-sidecar-args.json: no azure_filesystems")
	}
	return c
}

var paramRef = regexp.MustCompile(`parameters\('([^']+)'\)`)

// TestACITemplate checks the ARM template of the ACI confidential container group: the
// confidential SKU and a ccePolicy slot, the encfs sidecar (privileged, EncfsSideCarArgs,
// `encfs mount --config-env`), a consumer on the same emptyDir volume, every parameter
// declared and given a value, and mount paths that agree with the example configuration.
func TestACITemplate(t *testing.T) {
	for _, f := range []struct{ template, params string }{
		{"examples/aci/encfs-aci.json", "examples/aci/encfs-aci.parameters.json"},
		{"examples/aci/encfs-skr-aci.json", "examples/aci/encfs-skr-aci.parameters.json"},
	} {
		t.Run(path.Base(f.template), func(t *testing.T) { checkACITemplate(t, f.template, f.params) })
	}
}

func checkACITemplate(t *testing.T, file, paramsFile string) armTemplate {
	raw := readFile(t, file)
	var tpl armTemplate
	decodeStrict(t, file, raw, &tpl)
	if !strings.Contains(tpl.Schema, "deploymentTemplate.json") {
		t.Errorf("%s: $schema %q is not an ARM deployment template schema", file, tpl.Schema)
	}

	// Parameters: every reference declared; the parameters file sets only declared ones and
	// every one without a default.
	for _, m := range paramRef.FindAllStringSubmatch(string(raw), -1) {
		if _, ok := tpl.Parameters[m[1]]; !ok {
			t.Errorf("%s: parameters('%s') is used but not declared", file, m[1])
		}
	}
	var pf struct {
		Schema         string `json:"$schema"`
		ContentVersion string `json:"contentVersion"`
		Parameters     map[string]struct {
			Value json.RawMessage `json:"value"`
		} `json:"parameters"`
	}
	decodeStrict(t, paramsFile, readFile(t, paramsFile), &pf)
	for name := range pf.Parameters {
		if _, ok := tpl.Parameters[name]; !ok {
			t.Errorf("%s sets %s, which the template does not declare", paramsFile, name)
		}
	}
	for name, p := range tpl.Parameters {
		if p.DefaultValue == nil {
			if _, ok := pf.Parameters[name]; !ok {
				t.Errorf("parameter %s has no default and %s does not set it", name, paramsFile)
			}
		}
	}

	if len(tpl.Resources) != 1 {
		t.Fatalf("%s: %d resources; want the container group", file, len(tpl.Resources))
	}
	cg := tpl.Resources[0]
	if cg.Type != "Microsoft.ContainerInstance/containerGroups" {
		t.Fatalf("%s: resource type %q", file, cg.Type)
	}
	if cg.APIVersion < "2023-05-01" {
		t.Errorf("%s: apiVersion %s; confidential container groups need 2023-05-01 or later", file, cg.APIVersion)
	}
	p := cg.Properties
	if !strings.EqualFold(p.SKU, "Confidential") {
		t.Errorf("%s: sku %q; want Confidential", file, p.SKU)
	}
	if p.ConfidentialComputeProperties == nil || p.ConfidentialComputeProperties.CCEPolicy == nil {
		t.Errorf("%s: properties.confidentialComputeProperties.ccePolicy is missing (az confcom acipolicygen fills it)", file)
	}
	if p.OSType != "Linux" {
		t.Errorf("%s: osType %q; want Linux", file, p.OSType)
	}
	if cg.Identity == nil || len(cg.Identity.UserAssignedIdentities) == 0 {
		t.Errorf("%s: no user-assigned identity for blob access and key release", file)
	}
	// A parameter without a value becomes the wildcard .* in the policy acipolicygen writes, so
	// every environment variable and command must be fixed at policy time: give each parameter
	// they use a default (a placeholder that fails closed), never leave it open.
	for _, c := range cg.Properties.Containers {
		var texts []string
		for _, e := range c.Properties.EnvironmentVariables {
			if e.Value != nil {
				texts = append(texts, *e.Value)
			}
			if e.SecureValue != nil {
				texts = append(texts, *e.SecureValue)
			}
		}
		texts = append(texts, c.Properties.Command...)
		for _, txt := range texts {
			for _, m := range paramRef.FindAllStringSubmatch(txt, -1) {
				if par, ok := tpl.Parameters[m[1]]; ok && par.DefaultValue == nil {
					t.Errorf("%s: container %s uses parameter %s, which has no defaultValue: az confcom acipolicygen run without it would allow any value (.*)", file, c.Name, m[1])
				}
			}
		}
	}

	volumes := map[string]bool{}
	for _, v := range p.Volumes {
		if v.EmptyDir == nil {
			continue
		}
		volumes[v.Name] = true
	}

	cfg := exampleConfig(t)
	wantDir := path.Dir(cfg.AzureFilesystems[0].MountPoint)
	var sidecar *armContainer
	var sharedVol string
	for i := range p.Containers {
		c := &p.Containers[i]
		if !isEncfsMount(c.Properties.Command) {
			continue
		}
		sidecar = c
		env := false
		for _, e := range c.Properties.EnvironmentVariables {
			if e.Name == "EncfsSideCarArgs" && (e.Value != nil || e.SecureValue != nil) {
				env = true
			}
		}
		if !env {
			t.Errorf("%s: container %s has no EncfsSideCarArgs environment variable", file, c.Name)
		}
		if sc := c.Properties.SecurityContext; sc == nil || sc.Privileged == nil || !*sc.Privileged {
			t.Errorf("%s: container %s must be privileged to mount FUSE in a confidential container group", file, c.Name)
		}
		if len(c.Properties.Command) == 0 || c.Properties.Command[0] != "/encfs" {
			t.Errorf("%s: container %s command starts with %q; ACI's command replaces the image's ENTRYPOINT, so start with /encfs", file, c.Name, c.Properties.Command)
		}
		for _, vm := range c.Properties.VolumeMounts {
			if volumes[vm.Name] {
				sharedVol = vm.Name
				if vm.MountPath != wantDir {
					t.Errorf("%s: sidecar mounts volume %s at %s; the example configuration's mount_point %s needs %s", file, vm.Name, vm.MountPath, cfg.AzureFilesystems[0].MountPoint, wantDir)
				}
				if vm.ReadOnly {
					t.Errorf("%s: the sidecar's volume mount must be writable", file)
				}
			}
		}
	}
	if sidecar == nil {
		t.Fatalf("%s: no container runs `/encfs mount --config-env EncfsSideCarArgs`", file)
	}
	if sharedVol == "" {
		t.Fatalf("%s: the sidecar mounts no emptyDir volume", file)
	}
	consumers := 0
	for _, c := range p.Containers {
		if c.Name == sidecar.Name {
			continue
		}
		for _, vm := range c.Properties.VolumeMounts {
			if vm.Name == sharedVol {
				consumers++
				if vm.MountPath != wantDir {
					t.Errorf("%s: consumer %s mounts the shared volume at %s; want %s", file, c.Name, vm.MountPath, wantDir)
				}
				checkConsumerScript(t, file+" consumer "+c.Name, c.Properties.Command, cfg.AzureFilesystems[0].MountPoint)
			}
		}
	}
	if consumers == 0 {
		t.Errorf("%s: no consumer container shares volume %s with the sidecar", file, sharedVol)
	}
	return tpl
}

// checkConsumerScript checks an inline `sh -c` consumer: valid shell, waiting for the
// configured mount point with a timeout.
func checkConsumerScript(t *testing.T, where string, argv []string, mountPoint string) {
	t.Helper()
	if len(argv) != 3 || argv[1] != "-c" || !strings.HasSuffix(argv[0], "sh") {
		t.Errorf("%s: command %q; want [/bin/sh -c SCRIPT]", where, argv)
		return
	}
	script := argv[2]
	if !strings.Contains(script, mountPoint) {
		t.Errorf("%s: the script does not wait for %s", where, mountPoint)
	}
	if !strings.Contains(script, "not ready after") {
		t.Errorf("%s: the script has no timeout message", where)
	}
	if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
		t.Errorf("%s: sh -n: %v\n%s", where, err, out)
	}
}
