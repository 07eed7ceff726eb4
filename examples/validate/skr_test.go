package validate

import (
	"encoding/base64"
	"encoding/json"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// skrArgs mirrors the key release API's settings (SkrSideCarArgs), decoded strictly.
type skrArgs struct {
	CertCache struct {
		EndpointType string `json:"endpoint_type"`
		Endpoint     string `json:"endpoint"`
		TeeType      string `json:"tee_type"`
		APIVersion   string `json:"api_version"`
		ClientID     string `json:"client_id"`
	} `json:"certcache"`
	Identity struct {
		ClientID string `json:"client_id"`
	} `json:"identity"`
	MAAConfig struct {
		UserAgent string `json:"user_agent"`
	} `json:"maaconfig"`
}

const skrArgsFile = "examples/config/skr-sidecar-args.json"

// skrContainer is what the checks below need of a container, from ACI or Kubernetes.
type skrContainer struct {
	name       string
	argv       []string
	env        map[string]string
	privileged bool
}

func isEncfsSKR(argv []string) bool {
	if len(argv) > 0 && filepath.Base(argv[0]) == "encfs" {
		argv = argv[1:]
	}
	return len(argv) > 0 && argv[0] == "skr"
}

// TestSKRArgsExample decodes the example SkrSideCarArgs document strictly.
func TestSKRArgsExample(t *testing.T) {
	var a skrArgs
	decodeStrict(t, skrArgsFile, readFile(t, skrArgsFile), &a)
	if a.CertCache.EndpointType != "LocalTHIM" || a.CertCache.Endpoint == "" {
		t.Errorf("%s: certcache %+v; want the LocalTHIM endpoint", skrArgsFile, a.CertCache)
	}
}

// TestSKRExamples checks the examples with both sidecars: a container running `encfs skr` (no
// privilege, SkrSideCarArgs from the example document, a numeric Port) and an application
// container whose script calls POST /key/release on that port of the loopback address with the
// reference's request body, every variable it uses defined in its environment.
func TestSKRExamples(t *testing.T) {
	t.Run("encfs-skr-aci.json", func(t *testing.T) {
		const file = "examples/aci/encfs-skr-aci.json"
		tpl := checkACITemplate(t, file, "examples/aci/encfs-skr-aci.parameters.json")
		param := func(v string) string {
			m := paramRef.FindStringSubmatch(v)
			if m == nil {
				return v
			}
			var d string
			_ = json.Unmarshal(tpl.Parameters[m[1]].DefaultValue, &d)
			return d
		}
		var cs []skrContainer
		for _, c := range tpl.Resources[0].Properties.Containers {
			sc := skrContainer{name: c.Name, argv: c.Properties.Command, env: map[string]string{}}
			for _, e := range c.Properties.EnvironmentVariables {
				if e.Value != nil {
					sc.env[e.Name] = param(*e.Value)
				}
			}
			if s := c.Properties.SecurityContext; s != nil && s.Privileged != nil {
				sc.privileged = *s.Privileged
			}
			cs = append(cs, sc)
		}
		if tpl.Resources[0].Properties.IPAddress != nil && strings.Contains(string(tpl.Resources[0].Properties.IPAddress), "8080") {
			t.Errorf("%s: the group's ipAddress exposes port 8080: the key release API must stay inside the group", file)
		}
		checkSKRContainers(t, file, cs)
	})
	t.Run("encfs-skr-aks.yaml", func(t *testing.T) {
		const file = "examples/aks/encfs-skr-aks.yaml"
		pod := checkAKSManifest(t, file)
		if pod == nil {
			return
		}
		var cs []skrContainer
		for _, c := range pod.Spec.Containers {
			sc := skrContainer{name: c.Name, argv: append(append([]string{}, c.Command...), c.Args...), env: map[string]string{}}
			for _, e := range c.Env {
				sc.env[e.Name] = e.Value
			}
			if s := c.SecurityContext; s != nil && s.Privileged != nil {
				sc.privileged = *s.Privileged
			}
			for _, p := range c.Ports {
				if isEncfsSKR(sc.argv) && p.HostPort != 0 {
					t.Errorf("%s: container %s publishes a hostPort: the key release API must stay inside the pod", file, c.Name)
				}
			}
			cs = append(cs, sc)
		}
		checkSKRContainers(t, file, cs)
	})
}

var shVar = regexp.MustCompile(`\$\{?([A-Za-z_][A-Za-z0-9_]*)`)

func checkSKRContainers(t *testing.T, file string, cs []skrContainer) {
	t.Helper()
	var skr *skrContainer
	for i := range cs {
		if isEncfsSKR(cs[i].argv) {
			skr = &cs[i]
		}
	}
	if skr == nil {
		t.Fatalf("%s: no container runs `encfs skr`", file)
	}
	if len(skr.argv) == 0 || skr.argv[0] != "/encfs" {
		t.Errorf("%s: container %s command %q; the command replaces the image's ENTRYPOINT, so start with /encfs", file, skr.name, skr.argv)
	}
	if skr.privileged {
		t.Errorf("%s: container %s is privileged; the key release API needs no privilege", file, skr.name)
	}
	if _, ok := flagValue(skr.argv, "--address"); ok {
		t.Errorf("%s: container %s sets --address: the API must listen on loopback only, inside the group", file, skr.name)
	}
	args, ok := skr.env["SkrSideCarArgs"]
	if !ok {
		t.Errorf("%s: container %s has no SkrSideCarArgs", file, skr.name)
	} else if args != "<base64 -w0 "+skrArgsFile+">" {
		b, err := base64.StdEncoding.DecodeString(args)
		if err != nil {
			t.Errorf("%s: SkrSideCarArgs is neither the placeholder nor base64: %v", file, err)
		}
		var a skrArgs
		decodeStrict(t, file+" SkrSideCarArgs", b, &a)
	}
	port := "8080"
	if p, ok := skr.env["Port"]; ok {
		port = p
	}
	if v, ok := flagValue(skr.argv, "--port"); ok {
		port = v
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		t.Errorf("%s: port %q of the key release API is not a TCP port", file, port)
	}

	calls := 0
	for _, c := range cs {
		if len(c.argv) != 3 || c.argv[1] != "-c" {
			continue
		}
		script := c.argv[2]
		var line string
		for _, l := range strings.Split(script, "\n") {
			if strings.Contains(l, "curl ") && strings.Contains(l, "/key/release") {
				line = l
			}
		}
		if line == "" {
			continue
		}
		calls++
		where := file + " container " + c.name
		if out, err := exec.Command("sh", "-n", "-c", script).CombinedOutput(); err != nil {
			t.Errorf("%s: sh -n: %v\n%s", where, err, out)
		}
		for _, m := range shVar.FindAllStringSubmatch(script, -1) {
			if m[1][0] >= 'A' && m[1][0] <= 'Z' { // the environment's; lower case are the script's own
				if _, ok := c.env[m[1]]; !ok {
					t.Errorf("%s: the script uses $%s, which the container's environment does not set", where, m[1])
				}
			}
		}
		// Let sh expand the request exactly as it will run, printing curl's arguments instead
		// of sending them, and check the URL and the JSON body.
		prelude := strings.SplitN(script, "\n", 2)[0]
		probe := "curl() { for a in \"$@\"; do printf '%s\\n' \"$a\"; done; }\n" + prelude + "\n" + line + "\nprintf '%s' \"$code\""
		cmd := exec.Command("sh", "-c", probe)
		for k, v := range c.env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s: expanding the curl line: %v", where, err)
			continue
		}
		argv := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
		if !hasSeq(argv, "-X", "POST") {
			t.Errorf("%s: the /key/release call is not a POST: %q", where, argv)
		}
		body, ok := flagValue(argv, "-d")
		if !ok {
			t.Errorf("%s: the /key/release call sends no body (-d): %q", where, argv)
			continue
		}
		var req map[string]any
		if err := json.Unmarshal([]byte(body), &req); err != nil {
			t.Errorf("%s: the /key/release body %q is not JSON: %v", where, body, err)
			continue
		}
		for _, f := range []string{"maa_endpoint", "akv_endpoint", "kid"} {
			if s, _ := req[f].(string); s == "" {
				t.Errorf("%s: the /key/release body lacks %s: %s", where, f, body)
			}
		}
		for f := range req {
			switch f {
			case "maa_endpoint", "akv_endpoint", "kid", "access_token":
			default:
				t.Errorf("%s: the /key/release body has field %q, which the API refuses", where, f)
			}
		}
		u, err := url.Parse(argv[len(argv)-1])
		if err != nil || u.Path != "/key/release" || u.Port() != port || (u.Hostname() != "127.0.0.1" && u.Hostname() != "localhost") {
			t.Errorf("%s: /key/release URL %q; want http://127.0.0.1:%s/key/release", where, argv[len(argv)-1], port)
		}
	}
	if calls == 0 {
		t.Errorf("%s: no container calls POST /key/release with curl", file)
	}
}
