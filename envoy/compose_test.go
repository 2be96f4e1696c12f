package envoy_test

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/tollgate-ai/tollgate/internal/app"
)

// composeFile is the part of the Compose format envoy/docker-compose.yaml
// uses; an unknown field is an error, so a typo cannot pass silently.
type composeFile struct {
	Name     string                    `yaml:"name"`
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]struct{}       `yaml:"volumes"`
}

type composeService struct {
	Image string `yaml:"image"`
	Build *struct {
		Context    string `yaml:"context"`
		Dockerfile string `yaml:"dockerfile"`
	} `yaml:"build"`
	Command     []string          `yaml:"command"`
	Volumes     []string          `yaml:"volumes"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test     []string `yaml:"test"`
		Interval string   `yaml:"interval"`
		Timeout  string   `yaml:"timeout"`
		Retries  int      `yaml:"retries"`
	} `yaml:"healthcheck"`
	StopGracePeriod string   `yaml:"stop_grace_period"`
	ReadOnly        bool     `yaml:"read_only"`
	CapDrop         []string `yaml:"cap_drop"`
	SecurityOpt     []string `yaml:"security_opt"`
	Restart         string   `yaml:"restart"`
}

func parseCompose(data []byte) (*composeFile, error) {
	var c composeFile
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return nil, err
	}
	return &c, nil
}

var interpolation = regexp.MustCompile(`^\$\{(\w+)(?::?([-?])(.*))?\}$`)

// getenv is what the service's process sees: ${VAR:-default} gives the
// default, ${VAR:?message} (which compose refuses to start without) a
// placeholder.
func (s composeService) getenv(name string) string {
	v := s.Environment[name]
	if m := interpolation.FindStringSubmatch(v); m != nil {
		if m[2] == "-" {
			return m[3]
		}
		return "placeholder-" + m[1]
	}
	return v
}

// mount returns the source of the volume mounted at target ("" if none).
func (s composeService) mount(target string) string {
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if len(parts) >= 2 && parts[1] == target {
			return parts[0]
		}
	}
	return ""
}

var envoyTag = regexp.MustCompile(`^envoyproxy/envoy:v1\.(\d+)`)

func checkCompose(b *bundle) error {
	c := b.compose
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	envoy, tg, redis := c.Services["envoy"], c.Services["tollgate"], c.Services["redis"]
	if envoy.Image == "" || tg.Build == nil || redis.Image == "" {
		return errors.New("want services envoy (image), tollgate (build) and redis (image)")
	}
	// Envoy runs the validated envoy.yaml itself.
	if m := envoyTag.FindStringSubmatch(envoy.Image); m == nil {
		bad("envoy image %s is not a pinned envoyproxy/envoy:v1.N", envoy.Image)
	} else if n, _ := strconv.Atoi(m[1]); n < 36 {
		bad("envoy image %s: envoy.yaml's request_body_buffer_limit needs 1.36 or later", envoy.Image)
	}
	i := slices.IndexFunc(envoy.Command, func(a string) bool { return a == "-c" || a == "--config-path" })
	if i < 0 || i+1 >= len(envoy.Command) {
		bad("envoy command %v names no config", envoy.Command)
	} else if src := envoy.mount(envoy.Command[i+1]); path.Join("envoy", src) != "envoy/envoy.yaml" {
		bad("envoy's %s is mounted from %q, not the validated envoy/envoy.yaml", envoy.Command[i+1], src)
	}
	listener := b.boot.GetStaticResources().GetListeners()[0].GetAddress().GetSocketAddress().GetPortValue()
	if !slices.ContainsFunc(envoy.Ports, func(p string) bool { return strings.HasSuffix(p, fmt.Sprintf(":%d", listener)) }) {
		bad("envoy ports %v do not publish envoy.yaml's listener port %d", envoy.Ports, listener)
	}
	// tollgate is built from the repository's Dockerfile and reads the
	// compose config at the path the image's CMD names.
	if ctx := path.Join("envoy", tg.Build.Context); ctx != "." {
		bad("tollgate build context %s, want the repository root", ctx)
	} else if _, ok := b.files[tg.Build.Dockerfile]; !ok {
		bad("tollgate dockerfile %s does not exist", tg.Build.Dockerfile)
	}
	cfgPath, err := b.docker.configPath()
	if err != nil {
		return err
	}
	if tg.Command != nil && !slices.Equal(tg.Command, []string{"serve", "--config", cfgPath}) {
		bad("tollgate command %v does not read %s", tg.Command, cfgPath)
	}
	src := path.Join("envoy", tg.mount(cfgPath))
	data, ok := b.files[src]
	if !ok {
		return errors.Join(append(errs, fmt.Errorf("tollgate's %s is mounted from %s, which does not exist", cfgPath, src))...)
	}
	cfg, err := app.ParseConfig(bytes.NewReader(data), tg.getenv)
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("%s with the compose environment: %w", src, err))...)
	}
	if cfg.Store.Type != "redis" {
		bad("%s: store.type %q, want redis", src, cfg.Store.Type)
	}
	for _, a := range cfg.Store.Redis.Addrs {
		host, port, _ := net.SplitHostPort(a)
		if _, ok := c.Services[host]; !ok || host != "redis" || port != "6379" {
			bad("%s: store.redis.addrs %s is not the redis service's port 6379", src, a)
		}
	}
	if cfg.Store.SpoolDir == "" || tg.mount(cfg.Store.SpoolDir) == "" {
		bad("%s: spool_dir %q is not on a volume (the container is read-only)", src, cfg.Store.SpoolDir)
	}
	if cfg.Store.Redis.PasswordEnv != "" && tg.getenv(cfg.Store.Redis.PasswordEnv) == "" {
		bad("store.redis.password_env %s is not in tollgate's environment", cfg.Store.Redis.PasswordEnv)
	}
	// Envoy's tollgate cluster reaches this service on its gRPC port.
	ports, err := serverPorts(cfg)
	if err != nil {
		return err
	}
	sa := tollgateCluster(b).GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if _, ok := c.Services[sa.GetAddress()]; !ok || sa.GetAddress() != "tollgate" || int(sa.GetPortValue()) != ports[0] {
		bad("envoy.yaml's tollgate cluster %s:%d is not the tollgate service's grpc_addr port %d", sa.GetAddress(), sa.GetPortValue(), ports[0])
	}
	if grace, err := time.ParseDuration(tg.StopGracePeriod); err != nil || grace <= cfg.Server.DrainTimeout {
		bad("tollgate stop_grace_period %q is not above server.drain_timeout %v: docker would SIGKILL streams still draining", tg.StopGracePeriod, cfg.Server.DrainTimeout)
	}
	if tg.DependsOn["redis"].Condition != "service_healthy" || redis.Healthcheck == nil {
		bad("tollgate does not wait for a healthy redis")
	}
	if !tg.ReadOnly || !slices.Contains(tg.CapDrop, "ALL") {
		bad("tollgate container is not read-only with every capability dropped")
	}
	return errors.Join(errs...)
}
