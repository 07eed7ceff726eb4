package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/encfs/encfs/keys/skrtest"
)

// startSKR runs `encfs skr` in this process (so that it can use the fake SEV device) with args,
// and returns the URL it prints and a function that stops it (as SIGTERM does: the command's
// context ends) and returns its error.
func startSKR(t *testing.T, opts *skrOptions, args ...string) (string, func() error) {
	t.Helper()
	old := slog.Default()
	t.Cleanup(func() { slog.SetDefault(old) })
	cmd := skrCommand(&globalOptions{logLevel: "info", logFormat: "auto"}, opts)
	pr, pw := io.Pipe()
	cmd.SetOut(pw)
	cmd.SetErr(pw)
	cmd.SetArgs(args)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
	lines := bufio.NewScanner(pr)
	url := ""
	for lines.Scan() {
		if _, after, ok := strings.Cut(lines.Text(), "serving the key release API on "); ok {
			url, _, _ = strings.Cut(after, " ")
			break
		}
		t.Log(lines.Text())
	}
	go io.Copy(io.Discard, pr)
	if url == "" {
		cancel()
		t.Fatalf("encfs skr did not start: %v", <-done)
	}
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("encfs skr did not stop within 30s")
			return nil
		}
	}
	t.Cleanup(func() { stop() })
	return url, stop
}

// TestSKRReferenceCurlExamples configures `encfs skr` the way the reference SKR sidecar is
// configured (SkrSideCarArgs, Port, LogLevel, LogFile in the environment), runs the reference's
// documented curl client commands (docker/skr/tests/attest_client.sh and skr_client.sh: the same
// command lines and variables, /attest/combined included) with the real curl binary, and checks the response shapes. The
// key release goes through the managed identity named in SkrSideCarArgs, and the stale
// certificates in the security context make the sidecar refresh them from the certificate cache
// SkrSideCarArgs names. It also runs the application script of examples/aci/encfs-skr-aci.json
// against the server. Then it stops the server and searches the whole log for secrets.
func TestSKRReferenceCurlExamples(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("curl is not installed (apt-get install curl): the reference's examples are curl command lines")
	}
	env := skrtest.NewEnv(t, skrtest.EnvOptions{StaleCerts: true})
	const clientID = "22222222-3333-4444-5555-666666666666"
	env.ServeManagedIdentity(t, clientID)
	skrArgs, _ := json.Marshal(map[string]any{
		"certcache": map[string]string{"endpoint_type": "LocalTHIM", "endpoint": env.THIM.URL},
		"identity":  map[string]string{"client_id": clientID},
	})
	logFile := filepath.Join(t.TempDir(), "skr.log")
	t.Setenv("SkrSideCarArgs", base64.StdEncoding.EncodeToString(skrArgs))
	t.Setenv("Port", "0")
	t.Setenv("LogLevel", "debug")
	t.Setenv("LogFile", logFile)
	// The test environment's fake device, servers and roots, but the certificate cache and the
	// identity as SkrSideCarArgs gives them.
	opts := &skrOptions{}
	env.Customize(&opts.release)
	url, stop := startSKR(t, opts)
	port := url[strings.LastIndexByte(url, ':')+1:]

	runtimeData := base64.StdEncoding.EncodeToString([]byte(`{"nonce":"encfs-skr-curl-test"}`))
	// The reference client scripts, verbatim but for the port and the output file.
	attestRaw := `curl -X POST -H 'Content-Type: application/json' -d "{\"runtime_data\": \"$AttestClientRuntimeData\"}" http://localhost:PORT/attest/raw`
	attestCombined := `curl -X POST -H 'Content-Type: application/json' -d "{\"runtime_data\": \"$AttestClientRuntimeData\"}" http://localhost:PORT/attest/combined`
	attestMAA := `curl -X POST -H 'Content-Type: application/json' -d "{\"maa_endpoint\": \"$AttestClientMAAEndpoint\", \"runtime_data\": \"$AttestClientRuntimeData\"}" http://localhost:PORT/attest/maa`
	keyRelease := `curl -X POST -H 'Content-Type: application/json' -d "{\"maa_endpoint\": \"$SkrClientMAAEndpoint\", \"akv_endpoint\": \"$SkrClientAKVEndpoint\", \"kid\": \"$SkrClientKID\"}" http://localhost:PORT/key/release`
	status := `curl http://localhost:PORT/status`
	// docs/OPERATIONS.md shows the same command lines, so what the operator reads is what runs here.
	ops, err := os.ReadFile(filepath.Join(repoRoot, "docs", "OPERATIONS.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{attestRaw, attestCombined, attestMAA, keyRelease} {
		if !bytes.Contains(ops, []byte(strings.ReplaceAll(l, "PORT", "8080"))) {
			t.Errorf("docs/OPERATIONS.md does not show the reference's command line\n%s", strings.ReplaceAll(l, "PORT", "8080"))
		}
	}
	vars := []string{
		"AttestClientRuntimeData=" + runtimeData,
		"AttestClientMAAEndpoint=" + strings.TrimPrefix(env.MAA.URL, "https://"),
		"SkrClientMAAEndpoint=" + strings.TrimPrefix(env.MAA.URL, "https://"),
		"SkrClientAKVEndpoint=" + strings.TrimPrefix(env.Vault.URL, "https://"),
		"SkrClientKID=" + env.KeyName,
	}
	sh := func(line string) (int, map[string]string) {
		t.Helper()
		line = strings.Replace(line, "curl ", curl+` -sS -o "$OUT" -w '%{http_code}' `, 1)
		line = strings.ReplaceAll(line, "PORT", port)
		out := filepath.Join(t.TempDir(), "out.json")
		c := exec.Command("sh", "-c", line)
		c.Env = append(append(os.Environ(), vars...), "OUT="+out)
		code, err := c.Output()
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		body, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var doc map[string]string
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s: answer is not a JSON object of strings: %v: %s", line, err, body)
		}
		n := 0
		for _, ch := range string(code) {
			n = n*10 + int(ch-'0')
		}
		return n, doc
	}

	if code, doc := sh(status); code != 200 || doc["message"] != "STATUS OK" || len(doc) != 1 {
		t.Fatalf("/status: %d %v", code, doc)
	}
	code, doc := sh(attestRaw)
	if report, err := hex.DecodeString(doc["report"]); code != 200 || err != nil || len(report) != 1184 || len(doc) != 1 {
		t.Fatalf("/attest/raw: %d, %d keys, report of %d bytes (%v)", code, len(doc), len(report), err)
	}
	code, doc = sh(attestCombined)
	if code != 200 || len(doc) != 4 || doc["evidence"] == "" || doc["endorsements"] == "" || doc["endorsed_tcb"] == "" || doc["uvm_endorsements"] == "" {
		t.Fatalf("/attest/combined: %d %v", code, doc)
	}
	code, doc = sh(attestMAA)
	if code != 200 || len(doc) != 1 || strings.Count(doc["token"], ".") != 2 {
		t.Fatalf("/attest/maa: %d %v", code, doc)
	}
	maaToken := doc["token"]
	code, doc = sh(keyRelease)
	if code != 200 || len(doc) != 1 {
		t.Fatalf("/key/release: %d %v", code, doc)
	}
	var jwk struct{ Kty, K string }
	if err := json.Unmarshal([]byte(doc["key"]), &jwk); err != nil {
		t.Fatalf("key is not a JWK in a JSON string: %v", err)
	}
	if k, _ := base64.RawURLEncoding.DecodeString(jwk.K); jwk.Kty != "oct" || !bytes.Equal(k, env.ReleaseKey) {
		t.Fatalf("released JWK of type %s is not the vault's key", jwk.Kty)
	}
	// An error in the reference's shape: a key that does not exist.
	vars = append(vars, "SkrClientKID=no-such-key")
	code, doc = sh(keyRelease)
	if code != http.StatusForbidden || len(doc) != 1 || !strings.Contains(doc["error"], "KeyNotFound") {
		t.Fatalf("/key/release of a missing key: %d %v", code, doc)
	}
	// The application container of examples/aci/encfs-skr-aci.json, run as it is against this
	// server: only the port, the mount path and the output file are moved for the test.
	var tpl struct {
		Resources []struct {
			Properties struct {
				Containers []struct {
					Name       string
					Properties struct{ Command []string }
				}
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(repoRoot, "examples", "aci", "encfs-skr-aci.json")); err != nil || json.Unmarshal(b, &tpl) != nil || len(tpl.Resources) == 0 {
		t.Fatalf("examples/aci/encfs-skr-aci.json: %v", err)
	}
	var app string
	for _, c := range tpl.Resources[0].Properties.Containers {
		if c.Name == "app" && len(c.Properties.Command) == 3 {
			app = c.Properties.Command[2]
		}
	}
	if app == "" {
		t.Fatal("examples/aci/encfs-skr-aci.json has no app container with a script")
	}
	dir := t.TempDir()
	share := filepath.Join(dir, "share")
	if err := os.Mkdir(filepath.Join(dir, ".filesystem-0"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".filesystem-0", share); err != nil { // the published mount, as the sidecar makes it
		t.Fatal(err)
	}
	keyFile := filepath.Join(dir, "released-key.json")
	for old, new := range map[string]string{"127.0.0.1:8080": "127.0.0.1:" + port, "/mnt/remote/share": share,
		"/tmp/released-key.json": keyFile, "while :; do sleep 3600; done": "exit 0"} {
		if !strings.Contains(app, old) {
			t.Fatalf("the app script no longer holds %q; update this test", old)
		}
		app = strings.ReplaceAll(app, old, new)
	}
	c := exec.Command("sh", "-c", app)
	c.Env = append(os.Environ(), "SkrClientMAAEndpoint="+strings.TrimPrefix(env.MAA.URL, "https://"),
		"SkrClientAKVEndpoint="+strings.TrimPrefix(env.Vault.URL, "https://"), "SkrClientKID="+env.KeyName)
	out, err := c.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "app: key "+env.KeyName+" released") {
		t.Fatalf("the example's app script: %v\n%s", err, out)
	}
	var appKey struct{ Key string }
	b, _ := os.ReadFile(keyFile)
	if json.Unmarshal(b, &appKey) != nil || !strings.Contains(appKey.Key, jwk.K) {
		t.Fatalf("the app script did not keep the released JWK: %s", b)
	}
	if strings.Contains(string(out), jwk.K) {
		t.Fatal("the app script printed the key")
	}

	if env.THIMHits.Load() == 0 {
		t.Error("the certificate cache from SkrSideCarArgs was never asked for the stale certificates")
	}

	if err := stop(); err != nil {
		t.Fatalf("encfs skr stopped with %v", err)
	}
	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs, []byte(`"path":"/key/release"`)) || !bytes.Contains(logs, []byte(`"level":"DEBUG"`)) {
		t.Fatalf("LogFile lacks the requests or LogLevel=debug was not applied:\n%s", logs)
	}
	for name, s := range map[string]string{
		"release key (hex)":       hex.EncodeToString(env.ReleaseKey),
		"release key (base64)":    base64.StdEncoding.EncodeToString(env.ReleaseKey),
		"release key (base64url)": jwk.K,
		"AAD token":               env.BearerToken,
		"attestation token":       maaToken,
		"release's token":         env.MAA.LastToken(),
	} {
		if bytes.Contains(logs, []byte(s)) {
			t.Errorf("the log holds the %s", name)
		}
	}
	t.Logf("%d lines of log checked", bytes.Count(logs, []byte("\n")))
}

// TestSKRBinary runs the built binary: /status answers, a non-loopback address is warned
// about, SIGTERM stops it with exit 0, and bad settings are refused with a clear message.
func TestSKRBinary(t *testing.T) {
	cmd := exec.Command(encfsBin, "skr", "--port", "0", "--address", "0.0.0.0", "--log-format", "text")
	cmd.Env = append(os.Environ(), "SkrSideCarArgs=", "LogFile=")
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no start line: %v; stderr:\n%s", err, stderr.String())
	}
	url := strings.Fields(strings.TrimPrefix(line, "serving the key release API on "))[0]
	url = strings.Replace(url, "0.0.0.0", "127.0.0.1", 1)
	resp, err := http.Get(url + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != `{"message":"STATUS OK"}` {
		t.Fatalf("/status: %d %s", resp.StatusCode, body)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { errc <- cmd.Wait() }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("encfs skr did not stop within 15s of SIGTERM")
	}
	if !strings.Contains(stderr.String(), "listens beyond loopback") {
		t.Errorf("no warning for 0.0.0.0 in:\n%s", stderr.String())
	}

	for _, tc := range []struct {
		env  []string
		args []string
		want string
	}{
		{[]string{"Port=http"}, []string{}, `port "http" (--port or $Port)`},
		{[]string{"SkrSideCarArgs=e30K%%"}, nil, "SkrSideCarArgs is not base64"},
		{[]string{"SkrSideCarArgs=" + base64.StdEncoding.EncodeToString([]byte(`{"certcache":{"endpont":"x"}}`))}, nil, `certcache: unknown field "endpont" (did you mean "endpoint"?)`},
		{[]string{"LogLevel=loud"}, nil, "$LogLevel \"loud\""},
		{nil, []string{"--port", "0", "--max-concurrent", "0"}, "--max-concurrent 0"},
	} {
		args := tc.args
		if args == nil {
			args = []string{"--port", "0"}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		c := exec.CommandContext(ctx, encfsBin, append([]string{"skr"}, args...)...)
		c.Env = append(os.Environ(), tc.env...)
		out, err := c.CombinedOutput()
		cancel()
		if err == nil || !strings.Contains(string(out), tc.want) {
			t.Errorf("%v %v: exit %v, want an error saying %q:\n%s", tc.env, tc.args, err, tc.want, out)
		}
	}
}

func TestReferenceLogLevels(t *testing.T) {
	for in, want := range map[string]string{"trace": "debug", "Debug": "debug", "info": "info", "warning": "warn", "error": "error", "fatal": "error", "panic": "error"} {
		if got, err := referenceLogLevel(in); err != nil || got != want {
			t.Errorf("%s: %s %v, want %s", in, got, err, want)
		}
	}
}
