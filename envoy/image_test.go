package envoy_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tollgate-ai/tollgate/internal/app"
)

// dockerfile is a Dockerfile split into stages and instructions, enough to
// check what the image runs without a Docker engine.
type dockerfile struct {
	stages []dockerStage
}

type dockerStage struct {
	image, name string
	instrs      []dockerInstr
}

type dockerInstr struct {
	cmd   string   // upper case: RUN, COPY, ...
	flags []string // leading --flag=value words
	args  []string // exec form decoded, shell form split on spaces
	text  string   // everything after the flags
}

func parseDockerfile(data []byte) (*dockerfile, error) {
	var d dockerfile
	var logical []string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") || (trimmed == "" && cur.Len() == 0) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	if cur.Len() > 0 {
		return nil, errors.New("the last instruction ends in a line continuation")
	}
	for _, l := range logical {
		cmd, rest, _ := strings.Cut(l, " ")
		in := dockerInstr{cmd: strings.ToUpper(cmd)}
		rest = strings.TrimSpace(rest)
		for strings.HasPrefix(rest, "--") {
			flag, r, _ := strings.Cut(rest, " ")
			in.flags = append(in.flags, flag)
			rest = strings.TrimSpace(r)
		}
		in.text = rest
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &in.args); err != nil {
				return nil, fmt.Errorf("%s %s: %w", in.cmd, rest, err)
			}
		} else {
			in.args = strings.Fields(rest)
		}
		if in.cmd == "FROM" {
			st := dockerStage{image: in.args[0]}
			if len(in.args) == 3 && strings.EqualFold(in.args[1], "AS") {
				st.name = in.args[2]
			}
			d.stages = append(d.stages, st)
			continue
		}
		if len(d.stages) == 0 {
			if in.cmd == "ARG" {
				continue
			}
			return nil, fmt.Errorf("%s before the first FROM", in.cmd)
		}
		st := &d.stages[len(d.stages)-1]
		st.instrs = append(st.instrs, in)
	}
	return &d, nil
}

// last returns the stage's last instruction cmd, nil when there is none.
func (s dockerStage) last(cmd string) *dockerInstr {
	for i := len(s.instrs) - 1; i >= 0; i-- {
		if s.instrs[i].cmd == cmd {
			return &s.instrs[i]
		}
	}
	return nil
}

// configPath is the file the image's CMD gives `serve --config`.
func (d *dockerfile) configPath() (string, error) {
	cmd := d.stages[len(d.stages)-1].last("CMD")
	if cmd == nil || len(cmd.args) != 3 || cmd.args[0] != "serve" || cmd.args[1] != "--config" {
		return "", errors.New("the final stage's CMD is not [\"serve\", \"--config\", FILE]")
	}
	return cmd.args[2], nil
}

// uid is the numeric user the final stage runs as.
func (d *dockerfile) uid() (int, error) {
	u := d.stages[len(d.stages)-1].last("USER")
	if u == nil {
		return 0, errors.New("the final stage sets no USER: it would run as root")
	}
	name, _, _ := strings.Cut(u.text, ":")
	n, err := strconv.Atoi(name)
	if err != nil {
		return 0, fmt.Errorf("USER %s is not numeric: Kubernetes' runAsNonRoot cannot verify a name", u.text)
	}
	return n, nil
}

// exposed returns the final stage's EXPOSEd TCP ports.
func (d *dockerfile) exposed() []int {
	var ports []int
	for _, in := range d.stages[len(d.stages)-1].instrs {
		if in.cmd != "EXPOSE" {
			continue
		}
		for _, a := range in.args {
			n, err := strconv.Atoi(strings.TrimSuffix(a, "/tcp"))
			if err == nil {
				ports = append(ports, n)
			}
		}
	}
	slices.Sort(ports)
	return ports
}

// serverPorts returns the gRPC and admin ports of a tollgate config.
func serverPorts(c *app.Config) ([]int, error) {
	var ports []int
	for _, addr := range []string{c.Server.GRPCAddr, c.Server.AdminAddr} {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("server address %q: %w", addr, err)
		}
		n, err := strconv.Atoi(p)
		if err != nil {
			return nil, fmt.Errorf("server address %q: %w", addr, err)
		}
		ports = append(ports, n)
	}
	return ports, nil
}

func defaultPorts() ([]int, error) {
	c, err := app.ParseConfig(strings.NewReader("{}"), func(string) string { return "" })
	if err != nil {
		return nil, err
	}
	return serverPorts(c)
}

var goDirective = regexp.MustCompile(`(?m)^go (\d+)\.(\d+)`)

func checkDockerfile(b *bundle) error {
	d := b.docker
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(d.stages) < 2 {
		return fmt.Errorf("%d stages, want a build stage and a final one", len(d.stages))
	}
	var build *dockerStage
	var buildRun *dockerInstr
	for i := range d.stages[:len(d.stages)-1] {
		for j, in := range d.stages[i].instrs {
			if in.cmd == "RUN" && strings.Contains(in.text, "go build") {
				build, buildRun = &d.stages[i], &d.stages[i].instrs[j]
			}
		}
	}
	if build == nil {
		return errors.New("no earlier stage RUNs go build")
	}
	m := goDirective.FindSubmatch(b.files["go.mod"])
	if m == nil {
		return errors.New("go.mod has no go directive")
	}
	if want := fmt.Sprintf("golang:%s.%s", m[1], m[2]); build.image != want {
		bad("build stage image %s, want %s (go.mod's go version)", build.image, want)
	}
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", `-ldflags "-s -w"`, "./cmd/tollgate"} {
		if !strings.Contains(buildRun.text, want) {
			bad("go build RUN lacks %s", want)
		}
	}
	if !slices.ContainsFunc(buildRun.flags, func(f string) bool { return strings.Contains(f, "type=cache") && strings.Contains(f, "/go/pkg/mod") }) {
		bad("go build RUN has no module cache mount")
	}
	out := ""
	if i := slices.Index(buildRun.args, "-o"); i >= 0 && i+1 < len(buildRun.args) {
		out = buildRun.args[i+1]
	} else {
		bad("go build RUN names no -o output")
	}
	final := d.stages[len(d.stages)-1]
	if !(strings.HasPrefix(final.image, "gcr.io/distroless/static") && strings.HasSuffix(final.image, ":nonroot")) && final.image != "scratch" {
		bad("final image %s, want distroless/static:nonroot or scratch", final.image)
	}
	binary := ""
	for _, in := range final.instrs {
		if in.cmd == "COPY" && slices.Contains(in.flags, "--from="+build.name) && len(in.args) == 2 && in.args[0] == out {
			binary = in.args[1]
		}
	}
	if ep := final.last("ENTRYPOINT"); ep == nil || len(ep.args) != 1 || ep.args[0] != binary || binary == "" {
		bad("ENTRYPOINT is not the binary copied from %s (%q)", out, binary)
	}
	if uid, err := d.uid(); err != nil {
		errs = append(errs, err)
	} else if uid == 0 {
		bad("USER is root")
	}
	if _, err := d.configPath(); err != nil {
		errs = append(errs, err)
	}
	want, err := defaultPorts()
	if err != nil {
		return err
	}
	slices.Sort(want)
	if got := d.exposed(); !slices.Equal(got, want) {
		bad("EXPOSE %v, want tollgate's default ports %v", got, want)
	}
	return errors.Join(errs...)
}

var (
	goListOnce  sync.Once
	goListFiles []string
	goListErr   error
)

// buildInputs lists the repository files `go build ./cmd/tollgate` reads.
func buildInputs() ([]string, error) {
	goListOnce.Do(func() {
		cmd := exec.Command("go", "list", "-deps", "-f",
			`{{if not .Standard}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}`, "./cmd/tollgate")
		cmd.Dir = repoRoot
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			goListErr = fmt.Errorf("go list: %w: %s", err, stderr.String())
			return
		}
		mod := exec.Command("go", "list", "-m", "-f", "{{.Dir}}")
		mod.Dir = repoRoot
		root, err := mod.Output()
		if err != nil {
			goListErr = fmt.Errorf("go list -m: %w", err)
			return
		}
		prefix := strings.TrimSpace(string(root)) + "/"
		goListFiles = []string{"go.mod", "go.sum"}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			dir, files, _ := strings.Cut(line, "|")
			if !strings.HasPrefix(dir+"/", prefix) {
				continue // a module from the cache, not the build context
			}
			rel := strings.TrimPrefix(dir+"/", prefix)
			for _, f := range strings.FieldsFunc(files, func(r rune) bool { return r == ',' || r == '|' }) {
				goListFiles = append(goListFiles, rel+f)
			}
		}
	})
	return goListFiles, goListErr
}

// dockerignored reports whether .dockerignore's patterns exclude name, the
// way Docker reads them: a pattern matches the path or one of its parent
// directories, and ** matches any number of directories.
func dockerignored(patterns []string, name string) (bool, error) {
	parts := strings.Split(name, "/")
	for _, p := range patterns {
		if strings.HasPrefix(p, "!") {
			return false, fmt.Errorf("exception pattern %q is not understood by this check", p)
		}
		pp := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
		for n := 1; n <= len(parts); n++ {
			if globSegments(pp, parts[:n]) {
				return true, nil
			}
		}
	}
	return false, nil
}

func globSegments(pattern, parts []string) bool {
	if len(pattern) == 0 {
		return len(parts) == 0
	}
	if pattern[0] == "**" {
		for i := 0; i <= len(parts); i++ {
			if globSegments(pattern[1:], parts[i:]) {
				return true
			}
		}
		return false
	}
	if len(parts) == 0 {
		return false
	}
	ok, err := path.Match(pattern[0], parts[0])
	return err == nil && ok && globSegments(pattern[1:], parts[1:])
}

func checkDockerignore(b *bundle) error {
	var patterns []string
	for _, l := range strings.Split(string(b.files[".dockerignore"]), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	inputs, err := buildInputs()
	if err != nil {
		return err
	}
	var errs []error
	for _, f := range inputs {
		if ex, err := dockerignored(patterns, f); err != nil {
			return err
		} else if ex {
			errs = append(errs, fmt.Errorf("%s is read by go build but excluded from the build context", f))
		}
	}
	// Secrets kept beside the compose file, and the repository's history,
	// must stay out of every image layer.
	for _, f := range []string{".env", "envoy/.env", ".git/config"} {
		if ex, err := dockerignored(patterns, f); err != nil {
			return err
		} else if !ex {
			errs = append(errs, fmt.Errorf("%s would be sent into the build context", f))
		}
	}
	return errors.Join(errs...)
}
