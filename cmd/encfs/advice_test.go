package main

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/encfs/encfs/blobio"
	"github.com/encfs/encfs/blobio/azure"
	"github.com/encfs/encfs/keys"
	"github.com/encfs/encfs/sidecar"
	"github.com/encfs/encfs/volume/writeback"
)

// TestAdvice checks that each library error the command line knows about gets its advice
// through the wrapping it arrives in, and that a diagnosed cause is not talked over.
func TestAdvice(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("mount /m: %w", err) }
	cases := []struct {
		err  error
		want string // "" when no advice is expected
	}{
		{wrap(fmt.Errorf("azure_filesystems[0].key_file: %w (/dev/sev-guest found)", sidecar.ErrKeyFileInTEE)), "--dev-allow-key-file"},
		{wrap(fmt.Errorf("key file k holds 3 bytes: %w", keys.ErrKeyFileSize)), "encfs keygen --out"},
		{&blobio.Error{Op: "open", Kind: blobio.ErrAuth, Err: fmt.Errorf("%w: no identity", azure.ErrNoToken), Azure: true}, "--client-id"},
		{&blobio.Error{Op: "upload to", Kind: blobio.ErrAuth, Err: azure.ErrNoWriteCredential, Azure: true}, "sp=cw"},
		{&blobio.Error{Op: "upload to", Kind: azure.ErrExists, Azure: true}, "--overwrite"},
		{fmt.Errorf("upload: %w: 60000 blocks", azure.ErrTooManyBlocks), "--block-size"},
		{fmt.Errorf("%w: /c has 3 MiB free", blobio.ErrDiskCache), "--disk-cache"},
		{&blobio.Error{Op: "create", Kind: azure.ErrVolumeExists, Azure: true}, "another blob name"},
		{&blobio.Error{Op: "open", Kind: azure.ErrLeased, Azure: true, Cause: "a volume has one writer at a time"}, "stop the other mount"},
		{&writeback.WriteError{Off: 0, Len: 4096, Err: &blobio.Error{Op: "write", Kind: azure.ErrLeaseLost}}, "mount the volume again"},
		{&writeback.WriteError{Off: 0, Len: 4096, Err: &blobio.Error{Op: "write", Kind: blobio.ErrUnreachable}}, "mount the volume again"},
		{&blobio.Error{Op: "read", Kind: blobio.ErrUnreachable}, "network access"},
		{&blobio.Error{Op: "open", Kind: blobio.ErrNotFound, Azure: true}, "Storage Blob Data Reader"},
		{&blobio.Error{Op: "open", Kind: blobio.ErrNotFound}, "check the URL"},
		// The source diagnosed the cause: its own words are the advice.
		{&blobio.Error{Op: "open", Kind: blobio.ErrAuth, Azure: true, Cause: "the SAS expired at 2026-01-01T00:00:00Z (se=); make a new one"}, ""},
		{errors.New("something else"), ""},
		{nil, ""},
	}
	for _, c := range cases {
		got := advice(c.err)
		if c.want == "" && got != "" || !strings.Contains(got, c.want) {
			t.Errorf("advice(%v) = %q, want it to contain %q", c.err, got, c.want)
		}
	}
}

// TestLibrariesNameNoFlags keeps the advice in one place: no string in a library package
// names a flag of the encfs command line. A library that needs the user to act returns an
// error that advice.go recognises instead.
func TestLibrariesNameNoFlags(t *testing.T) {
	flags := map[string]bool{}
	var collect func(c *cobra.Command)
	collect = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { flags[f.Name] = true })
		}
		for _, sub := range c.Commands() {
			collect(sub)
		}
	}
	collect(newRootCommand())
	if !flags["disk-cache"] || !flags["overwrite"] {
		t.Fatalf("the flag collection missed known flags: %v", flags)
	}
	// Packages that are not libraries of the sidecar: the command itself, tests' helpers, the
	// deployment examples and scripts.
	skip := regexp.MustCompile(`^(cmd|examples|scripts|chaos|\.tools|testdata)(/|$)|(^|/)(azuritetest|faultproxy|fstest|testtree|sourcetest)(/|$)`)
	flagRef := regexp.MustCompile(`--([a-z][a-z0-9-]+)`)
	root := filepath.Join("..", "..")
	fset := token.NewFileSet()
	checked := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() && rel != "." && (skip.MatchString(rel) || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		checked++
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				return true
			}
			for _, m := range flagRef.FindAllStringSubmatch(s, -1) {
				if flags[m[1]] {
					t.Errorf("%s: a library string names the command line's flag --%s (advice belongs in cmd/encfs/advice.go): %q", fset.Position(lit.Pos()), m[1], s)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked only %d library files", checked)
	}
}
