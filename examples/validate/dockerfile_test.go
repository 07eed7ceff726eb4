package validate

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

type stage struct {
	base, name string
	line       int
	nodes      []*parser.Node
}

func args(n *parser.Node) []string {
	var a []string
	for x := n.Next; x != nil; x = x.Next {
		a = append(a, x.Value)
	}
	return a
}

func parseDockerfile(t *testing.T) []stage {
	t.Helper()
	res, err := parser.Parse(bytes.NewReader(readFile(t, "Dockerfile")))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		t.Errorf("Dockerfile:%d: parser warning: %s", line, w.Short)
	}
	var stages []stage
	for _, n := range res.AST.Children {
		n.Value = strings.ToLower(n.Value) // the instruction keyword, as written
		if n.Value == "from" {
			a := args(n)
			s := stage{line: n.StartLine}
			if len(a) > 0 {
				s.base = a[0]
			}
			if len(a) == 3 && strings.EqualFold(a[1], "as") {
				s.name = a[2]
			}
			stages = append(stages, s)
			continue
		}
		if len(stages) == 0 {
			if n.Value != "arg" {
				t.Errorf("Dockerfile:%d: %s before the first FROM", n.StartLine, strings.ToUpper(n.Value))
			}
			continue
		}
		stages[len(stages)-1].nodes = append(stages[len(stages)-1].nodes, n)
	}
	return stages
}

// TestDockerfile checks the sidecar image's Dockerfile: a Go build stage producing a static,
// trimmed encfs binary, and a final stage that runs as root and starts `encfs mount` from the
// EncfsSideCarArgs environment variable.
func TestDockerfile(t *testing.T) {
	stages := parseDockerfile(t)
	if len(stages) < 2 {
		t.Fatalf("Dockerfile: %d stages; want a build stage and a runtime stage", len(stages))
	}
	names := map[string]bool{}
	for _, s := range stages {
		if s.name != "" {
			if names[s.name] {
				t.Errorf("Dockerfile:%d: stage name %q used twice", s.line, s.name)
			}
			names[s.name] = true
		}
		for _, n := range s.nodes {
			if n.Value == "add" {
				for _, a := range args(n) {
					if strings.Contains(a, "://") || strings.HasPrefix(a, "git@") {
						t.Errorf("Dockerfile:%d: ADD of a remote source %q: fetch nothing unverified at build time", n.StartLine, a)
					}
				}
			}
			if n.Value == "copy" {
				for _, f := range n.Flags {
					if from, ok := strings.CutPrefix(f, "--from="); ok && !names[from] {
						t.Errorf("Dockerfile:%d: COPY --from=%s names no earlier stage", n.StartLine, from)
					}
				}
			}
		}
	}

	// The build stage: golang image, CGO_ENABLED=0, -trimpath, -ldflags "-s -w", ./cmd/encfs.
	build := stages[0]
	if !strings.HasPrefix(build.base, "golang:") {
		t.Errorf("Dockerfile:%d: first stage builds FROM %q; want golang:<version>", build.line, build.base)
	}
	var buildCmd string
	for _, n := range build.nodes {
		if n.Value == "run" && strings.Contains(n.Original, "go build") {
			buildCmd = n.Original
		}
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/encfs"} {
		if !strings.Contains(buildCmd, want) {
			t.Errorf("Dockerfile: the build stage's go build lacks %s (RUN: %q)", want, buildCmd)
		}
	}

	// The default (last) stage is the sidecar.
	final := stages[len(stages)-1]
	if strings.HasPrefix(final.base, "golang:") {
		t.Errorf("Dockerfile:%d: the final stage is the Go toolchain image", final.line)
	}
	if strings.Contains(final.base, "nonroot") {
		t.Errorf("Dockerfile:%d: %s runs as a non-root user, which cannot mount FUSE with DirectMount", final.line, final.base)
	}
	var entry, cmd []string
	copied := false
	for _, n := range final.nodes {
		switch n.Value {
		case "entrypoint", "cmd":
			if !n.Attributes["json"] {
				t.Errorf("Dockerfile:%d: %s in shell form; use the exec form so that SIGTERM reaches encfs", n.StartLine, strings.ToUpper(n.Value))
			}
			if n.Value == "entrypoint" {
				entry = args(n)
			} else {
				cmd = args(n)
			}
		case "user":
			if u := strings.Join(args(n), ""); u != "0" && u != "root" && u != "0:0" && u != "root:root" {
				t.Errorf("Dockerfile:%d: USER %s: the sidecar must run as root to mount FUSE", n.StartLine, u)
			}
		case "copy":
			if a := args(n); len(a) > 0 && a[len(a)-1] == "/encfs" {
				copied = true
			}
		}
	}
	if !copied {
		t.Errorf("Dockerfile: the final stage does not COPY the binary to /encfs")
	}
	if !slices.Equal(entry, []string{"/encfs"}) {
		t.Errorf("Dockerfile: final ENTRYPOINT is %q; want [\"/encfs\"]", entry)
	}
	if !isEncfsMount(cmd) {
		t.Errorf("Dockerfile: final CMD is %q; want [\"mount\", \"--config-env\", \"EncfsSideCarArgs\", ...]", cmd)
	}
}

// TestDockerignore checks that the build context keeps every Go source file the binary needs
// and leaves out keys, images, the VCS directory and the local tools.
func TestDockerignore(t *testing.T) {
	f, err := os.Open(filepath.Join(root, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatalf(".dockerignore: %v", err)
	}
	excluded := func(rel string) bool {
		m, err := pm.MatchesOrParentMatches(filepath.ToSlash(rel))
		if err != nil {
			t.Fatalf(".dockerignore on %s: %v", rel, err)
		}
		return m
	}
	for _, p := range []string{".git/HEAD", ".tools/azurite", "release.key", "data.img", "encfs", "node_modules/x"} {
		if !excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
	for _, p := range []string{"go.mod", "go.sum", "cmd/encfs/main.go"} {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	// Every file the build of ./cmd/encfs reads from the repository (the Go files of the
	// packages it depends on, and their embedded files) must reach the builder.
	out, err := exec.Command("go", "list", "-C", root, "-deps",
		"-f", `{{if not .Standard}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .SFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}{{"\n"}}{{end}}{{end}}`,
		"./cmd/encfs").Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go list ./cmd/encfs: %v\n%s", err, stderr)
	}
	absRoot, _ := filepath.Abs(root)
	n := 0
	for _, f := range strings.Fields(string(out)) {
		rel, err := filepath.Rel(absRoot, f)
		if err != nil || strings.HasPrefix(rel, "..") {
			continue // the module cache
		}
		n++
		if excluded(rel) {
			t.Errorf(".dockerignore excludes %s, which the build of ./cmd/encfs reads", rel)
		}
	}
	if n < 10 {
		t.Errorf("found only %d Go source files under %s", n, root)
	}
}
