package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/encfs/encfs/config"
)

// repoRoot is the repository, seen from cmd/encfs where go test runs.
const repoRoot = "../.."

// A docUsage is one `encfs ...` command line found in the documentation.
type docUsage struct {
	file string
	line int
	argv []string // the arguments after the encfs word
}

func (u docUsage) String() string {
	return fmt.Sprintf("%s:%d: `encfs %s`", u.file, u.line, strings.Join(u.argv, " "))
}

// docFiles lists the documents whose encfs usages must match the command tree: README.md,
// docs/*.md, the Dockerfile and every text file under examples/ (not the validators' Go code).
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "Dockerfile"}
	mds, _ := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	for _, m := range mds {
		rel, _ := filepath.Rel(repoRoot, m)
		files = append(files, rel)
	}
	err := filepath.WalkDir(filepath.Join(repoRoot, "examples"), func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(repoRoot, path)
		switch strings.ToLower(filepath.Ext(rel)) {
		case ".md", ".sh", ".yaml", ".yml", ".json", ".txt":
			files = append(files, rel)
		default:
			if strings.HasPrefix(d.Name(), "Dockerfile") {
				files = append(files, rel)
			}
		}
		return nil
	})
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var have []string
	for _, f := range files {
		if _, err := os.Stat(filepath.Join(repoRoot, f)); err == nil {
			have = append(have, f)
		}
	}
	return have
}

// TestDocsCommandsExist checks that every `encfs SUBCOMMAND ... --flag` the documentation and
// the examples show names a real subcommand and real flags of the cobra command tree, so that
// the docs never drift from `encfs --help`.
func TestDocsCommandsExist(t *testing.T) {
	rootCmd := newRootCommand()
	prepareTree(rootCmd)
	total := 0
	perFile := map[string]int{}
	for _, f := range docFiles(t) {
		b, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range extractUsages(f, string(b)) {
			total++
			perFile[f]++
			if msg := checkUsage(rootCmd, u.argv); msg != "" {
				t.Errorf("%v: %s", u, msg)
			}
		}
	}
	t.Logf("checked %d encfs command lines in %d files", total, len(perFile))
	// Guard against a scanner that silently finds nothing.
	if perFile["README.md"] == 0 {
		t.Errorf("found no encfs command in README.md; the scanner is broken")
	}
	if _, err := os.Stat(filepath.Join(repoRoot, "docs", "OPERATIONS.md")); err == nil && perFile[filepath.Join("docs", "OPERATIONS.md")] < 10 {
		t.Errorf("found only %d encfs commands in docs/OPERATIONS.md; the scanner is broken", perFile[filepath.Join("docs", "OPERATIONS.md")])
	}
}

// TestDocsCheckerCatchesMistakes makes sure the checker above rejects what it should.
func TestDocsCheckerCatchesMistakes(t *testing.T) {
	rootCmd := newRootCommand()
	prepareTree(rootCmd)
	doc := "# t\n\nRun `encfs keygen --out k` or `encfs frobnicate`.\n\n```sh\n" +
		"encfs pack --key-file k \\\n  --no-such-flag dir img\n" +
		"fp=$(./encfs key fingerprint k) && echo \"$fp\"\n" +
		"sudo /usr/local/bin/encfs --log-level debug inspect --json img | jq .\n" +
		"kubectl logs pod -c encfs --tail 5\n" +
		"encfs key nosuch\n" +
		"```\n"
	us := extractUsages("t.md", doc)
	var got []string
	for _, u := range us {
		got = append(got, fmt.Sprintf("%d %s => %s", u.line, strings.Join(u.argv, " "), checkUsage(rootCmd, u.argv)))
	}
	want := []string{
		`3 keygen --out k => `,
		`3 frobnicate => unknown command "frobnicate" for "encfs"`,
		`6 pack --key-file k --no-such-flag dir img => unknown flag --no-such-flag for "encfs pack"`,
		`8 key fingerprint k => `,
		`9 --log-level debug inspect --json img => `,
		`11 key nosuch => unknown command "nosuch" for "encfs key"`,
	}
	if len(got) != len(want) {
		t.Fatalf("usages:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("usage %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}

	// Exec-form arrays: JSON files and the Dockerfile.
	js := "{\n \"command\": [\n  \"/encfs\",\n  \"mount\",\n  \"--no-such\"\n ]\n}\n"
	us = extractUsages("t.json", js)
	if len(us) != 1 || us[0].line != 3 || checkUsage(rootCmd, us[0].argv) == "" {
		t.Errorf("JSON command array: got %v", us)
	}
	df := "FROM x AS a\nENTRYPOINT [\"/encfs\"]\nCMD [\"keygen\", \"--bogus\"]\nFROM y\nCMD [\"sh\"]\n"
	us = extractUsages("Dockerfile", df)
	if len(us) != 1 || us[0].line != 3 || checkUsage(rootCmd, us[0].argv) == "" {
		t.Errorf("Dockerfile CMD: got %v", us)
	}
}

// TestExampleConfigs parses every example sidecar configuration with the real parser.
func TestExampleConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(repoRoot, "examples", "config", "*.json"))
	if len(files) == 0 {
		t.Skip("no examples/config/*.json")
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(repoRoot, f)
		if strings.HasPrefix(filepath.Base(f), "skr-") {
			// The key release API's settings (SkrSideCarArgs), as `encfs skr` reads them.
			if _, err := config.ParseSKRArgs(base64.StdEncoding.EncodeToString(b)); err != nil {
				t.Errorf("%s: %v", rel, err)
			}
			continue
		}
		if _, err := config.Parse(b); err != nil {
			t.Errorf("%s: %v", rel, err)
		}
	}
}

// prepareTree adds cobra's lazily created help command and flags, so that `encfs help` and
// `--help` count as existing.
func prepareTree(root *cobra.Command) {
	root.InitDefaultHelpCmd()
	root.InitDefaultCompletionCmd()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		c.InitDefaultVersionFlag()
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// checkUsage walks argv down the command tree and returns what is wrong with it, or "".
func checkUsage(root *cobra.Command, argv []string) string {
	cur := root
	positional := false // a positional argument was seen: no more subcommands
	for i := 0; i < len(argv); i++ {
		a := argv[i]
		switch {
		case a == "--":
			return ""
		case strings.HasPrefix(a, "--"):
			name, _, hasValue := strings.Cut(a[2:], "=")
			f := lookupFlag(cur, name)
			if f == nil {
				return fmt.Sprintf("unknown flag --%s for %q (it has: %s)", name, cur.CommandPath(), flagNames(cur))
			}
			if !hasValue && f.NoOptDefVal == "" {
				i++ // the flag's value
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			sh := a[1:2]
			f := cur.Flags().ShorthandLookup(sh)
			if f == nil {
				f = cur.InheritedFlags().ShorthandLookup(sh)
			}
			if f == nil {
				return fmt.Sprintf("unknown flag -%s for %q (it has: %s)", sh, cur.CommandPath(), flagNames(cur))
			}
			if len(a) == 2 && f.NoOptDefVal == "" {
				i++
			}
		case positional:
		default:
			if isPlaceholder(a) {
				return "" // `encfs COMMAND --help` and the like
			}
			if sub := findSub(cur, a); sub != nil {
				cur = sub
				continue
			}
			if len(cur.Commands()) > 0 && !cur.Runnable() {
				return fmt.Sprintf("unknown command %q for %q (it has: %s)", a, cur.CommandPath(), subNames(cur))
			}
			positional = true
		}
	}
	return ""
}

func lookupFlag(c *cobra.Command, name string) *pflag.Flag {
	if f := c.Flags().Lookup(name); f != nil {
		return f
	}
	return c.InheritedFlags().Lookup(name)
}

func findSub(c *cobra.Command, name string) *cobra.Command {
	for _, s := range c.Commands() {
		if s.Name() == name || slices.Contains(s.Aliases, name) {
			return s
		}
	}
	return nil
}

func flagNames(c *cobra.Command) string {
	var names []string
	add := func(f *pflag.Flag) { names = append(names, "--"+f.Name) }
	c.Flags().VisitAll(add)
	c.InheritedFlags().VisitAll(add)
	slices.Sort(names)
	return strings.Join(slices.Compact(names), " ")
}

func subNames(c *cobra.Command) string {
	var names []string
	for _, s := range c.Commands() {
		names = append(names, s.Name())
	}
	return strings.Join(names, " ")
}

// isPlaceholder reports whether a word stands for something (COMMAND, <sub>, ...) rather than
// being a literal subcommand.
func isPlaceholder(s string) bool {
	return s == "..." || strings.ContainsAny(s, "<>$*{}") || (strings.ToUpper(s) == s && strings.ToLower(s) != s)
}

// extractUsages finds encfs command lines in a document: in Markdown, in fenced code blocks and
// inline code spans; in scripts, YAML and text, on every line (with backslash continuations
// joined); exec-form arrays whose first element is the encfs binary in JSON files, in YAML
// flow sequences and in a Dockerfile's ENTRYPOINT ["/encfs"] + CMD [...].
func extractUsages(file, text string) []docUsage {
	lines := strings.Split(text, "\n")
	var out []docUsage
	base := filepath.Base(file)
	switch {
	case strings.HasSuffix(file, ".md"):
		inFence := false
		var block []string
		blockStart := 0
		for i, l := range lines {
			trim := strings.TrimSpace(l)
			if strings.HasPrefix(trim, "```") || strings.HasPrefix(trim, "~~~") {
				if inFence {
					out = append(out, shellUsages(file, blockStart, block)...)
					block = nil
				} else {
					blockStart = i + 2
				}
				inFence = !inFence
				continue
			}
			if inFence {
				block = append(block, l)
				continue
			}
			for _, span := range inlineCode(l) {
				out = append(out, shellUsages(file, i+1, []string{span})...)
			}
		}
	case strings.HasSuffix(file, ".json"):
		out = append(out, jsonUsages(file, text)...)
	case strings.HasPrefix(base, "Dockerfile"):
		out = append(out, shellUsages(file, 1, lines)...)
		out = append(out, dockerfileUsages(file, lines)...)
	default:
		out = append(out, shellUsages(file, 1, lines)...)
		if strings.HasSuffix(file, ".yaml") || strings.HasSuffix(file, ".yml") {
			for i, l := range lines {
				for _, m := range flowSeq.FindAllString(l, -1) {
					var arr []string
					if json.Unmarshal([]byte(m), &arr) == nil && len(arr) > 0 && isEncfsWord(arr[0]) {
						out = append(out, docUsage{file, i + 1, arr[1:]})
					}
				}
			}
		}
	}
	return out
}

var (
	inlineSpan = regexp.MustCompile("`([^`]+)`")
	flowSeq    = regexp.MustCompile(`\[\s*"[^\]]*\]`)
	// The encfs word: encfs, ./encfs, /usr/local/bin/encfs, ./cmd/encfs (go run), at the
	// start of a command.
	encfsWord  = regexp.MustCompile(`(^|[\s;&|(` + "`" + `])((?:[\w.~${}-]*/)*encfs)(\s|$)`)
	dockerExec = regexp.MustCompile(`^\s*(?i:(FROM|ENTRYPOINT|CMD))\s+(.*)$`)
)

func inlineCode(l string) []string {
	var spans []string
	for _, m := range inlineSpan.FindAllStringSubmatch(l, -1) {
		spans = append(spans, m[1])
	}
	return spans
}

func isEncfsWord(s string) bool { return s == "encfs" || strings.HasSuffix(s, "/encfs") }

// shellUsages scans shell-like lines (first is line number start) for encfs commands.
func shellUsages(file string, start int, lines []string) []docUsage {
	var out []docUsage
	for i := 0; i < len(lines); i++ {
		lineNo := start + i
		l := lines[i]
		for strings.HasSuffix(strings.TrimRight(l, " \t"), "\\") && i+1 < len(lines) {
			l = strings.TrimSuffix(strings.TrimRight(l, " \t"), "\\") + " " + lines[i+1]
			i++
		}
		if strings.HasPrefix(strings.TrimSpace(l), "#") {
			// A comment: only its `code spans` are commands; the rest is prose.
			for _, span := range inlineCode(l) {
				out = append(out, shellUsages(file, lineNo, []string{span})...)
			}
			continue
		}
		for _, m := range encfsWord.FindAllStringSubmatchIndex(l, -1) {
			if !commandPosition(l[:m[4]]) {
				continue // prose in a string, or a flag's value as in `kubectl logs -c encfs`
			}
			argv := shellWords(l[m[5]:])
			if len(argv) == 0 {
				continue
			}
			out = append(out, docUsage{file, lineNo, argv})
		}
	}
	return out
}

// commandPosition reports whether a command word that follows before starts a command: at
// the start of the line, after ; | & ( ` {, or after sudo, exec, go run and the like (their
// options and VAR=value assignments skipped).
func commandPosition(before string) bool {
	b := strings.TrimRight(before, " \t")
	if b == "" || strings.ContainsAny(b[len(b)-1:], ";|&(`{") {
		return true
	}
	words := strings.Fields(b)
	for len(words) > 0 {
		w := words[len(words)-1]
		if strings.HasPrefix(w, "-") || (strings.Contains(w, "=") && !strings.HasPrefix(w, "=")) {
			words = words[:len(words)-1]
			continue
		}
		break
	}
	if len(words) == 0 {
		return true
	}
	switch words[len(words)-1] {
	case "sudo", "exec", "time", "nice", "nohup", "env", "run", "command", "then", "do", "else", "!", "$", "#":
		// "#" and "$": a root or user prompt in a transcript.
		return true
	}
	// A flag before the word that precedes it (kubectl logs -c encfs): not a command.
	return false
}

// shellWords splits the rest of a shell command into words, stopping at the end of the
// command (a pipe, ;, &, a redirection, a comment or an unbalanced parenthesis). Quoted words
// and $(...) substitutions are kept whole.
func shellWords(s string) []string {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			w := strings.TrimSuffix(strings.TrimPrefix(cur.String(), "["), "]")
			if w != "" {
				words = append(words, w)
			}
		}
		cur.Reset()
		inWord = false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				j = len(s) - i - 1
			}
			cur.WriteString(s[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '$' && i+1 < len(s) && s[i+1] == '(':
			depth, j := 0, i+1
			for ; j < len(s); j++ {
				if s[j] == '(' {
					depth++
				} else if s[j] == ')' {
					depth--
					if depth == 0 {
						break
					}
				}
			}
			cur.WriteString(s[i:min(j+1, len(s))])
			inWord = true
			i = j
		case c == '#' && !inWord:
			flush()
			return words
		case strings.IndexByte("|;&<>)`", c) >= 0:
			flush()
			return words
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words
}

// jsonUsages finds string arrays whose first element is the encfs binary in a JSON document.
func jsonUsages(file, text string) []docUsage {
	var v any
	if json.Unmarshal([]byte(text), &v) != nil {
		return nil
	}
	var out []docUsage
	searchFrom := 0
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			keys := make([]string, 0, len(x))
			for k := range x {
				keys = append(keys, k)
			}
			// Walk in document order so that line numbers come out in order.
			slices.SortFunc(keys, func(a, b string) int {
				return strings.Index(text, `"`+a+`"`) - strings.Index(text, `"`+b+`"`)
			})
			for _, k := range keys {
				walk(x[k])
			}
		case []any:
			var arr []string
			for _, e := range x {
				if s, ok := e.(string); ok {
					arr = append(arr, s)
				}
			}
			if len(arr) == len(x) && len(arr) > 0 && isEncfsWord(arr[0]) {
				q, _ := json.Marshal(arr[0])
				line := 1
				if j := strings.Index(text[searchFrom:], string(q)); j >= 0 {
					line += strings.Count(text[:searchFrom+j], "\n")
					searchFrom += j + len(q)
				}
				out = append(out, docUsage{file, line, arr[1:]})
				return
			}
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// dockerfileUsages pairs each stage's exec-form ENTRYPOINT ["/encfs"] with its CMD.
func dockerfileUsages(file string, lines []string) []docUsage {
	var out []docUsage
	entryIsEncfs := false
	for i, l := range lines {
		m := dockerExec.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		var arr []string
		json.Unmarshal([]byte(strings.TrimSpace(m[2])), &arr)
		switch strings.ToUpper(m[1]) {
		case "FROM":
			entryIsEncfs = false
		case "ENTRYPOINT":
			entryIsEncfs = len(arr) == 1 && isEncfsWord(arr[0])
		case "CMD":
			if entryIsEncfs && len(arr) > 0 {
				out = append(out, docUsage{file, i + 1, arr})
			}
		}
	}
	return out
}
