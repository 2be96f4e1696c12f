package app

import (
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/tollgate-ai/tollgate/accounts"
	"github.com/tollgate-ai/tollgate/consumer"
	"github.com/tollgate-ai/tollgate/limiter"
	"github.com/tollgate-ai/tollgate/processor"
	"github.com/tollgate-ai/tollgate/quota"
)

// policies builds the processor's policy from the config file and the
// runtime accounts, and swaps it in whenever either changes. The config is
// the starting point; what was created at runtime is kept (see package
// accounts for the precedence).
type policies struct {
	getenv func(string) string
	log    *slog.Logger
	proc   *processor.Server // set once the server exists

	mu  sync.Mutex // one rebuild at a time, so an older one never wins
	cfg atomic.Pointer[Config]
}

// base is what the running config file declares, for the accounts to
// merge over.
func (p *policies) base() accounts.Base { return p.baseOf(p.cfg.Load()) }

func (p *policies) baseOf(c *Config) accounts.Base {
	b := accounts.Base{Tiers: c.Tiers, Consumers: c.Consumers, Getenv: p.getenv}
	for _, pc := range c.Providers {
		b.Providers = append(b.Providers, accounts.ConfigProvider{
			Name: pc.Name, PathPrefix: pc.PathPrefix, Host: pc.Host, Header: pc.Header, KeyEnvs: pc.KeyEnvs(), Rest: pc.Rest,
		})
	}
	return b
}

// build compiles the policy of config c with the runtime accounts snap
// and, when it compiles, makes c the running config.
func (p *policies) build(c *Config, snap *accounts.Snapshot) (*processor.Policy, error) {
	opts, merged, warnings := accounts.Merge(p.baseOf(c), snap)
	for _, w := range warnings {
		p.log.Warn("accounts: " + w)
	}
	consumers, err := consumer.NewRegistry(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot build the consumers: %w", err)
	}
	rules, err := limiter.Compile(c.Limits)
	if err != nil {
		return nil, err
	}
	q, err := quota.Compile(c.Quota)
	if err != nil {
		return nil, err
	}
	pol, err := processor.NewPolicy(processor.PolicyOptions{
		Config:    c.Processing,
		Providers: providersOf(c, merged),
		Consumers: consumers,
		Rules:     rules,
		Quota:     q.Bind(consumers),
	})
	if err != nil {
		return nil, err
	}
	p.cfg.Store(c)
	return pol, nil
}

// providersOf turns the merged providers into the processor's, with the
// fallbacks the config file sets.
func providersOf(c *Config, merged []accounts.Provider) []processor.Provider {
	fallback := map[string]*processor.Fallback{}
	for _, pc := range c.Providers {
		fallback[pc.Name] = pc.Fallback
	}
	out := make([]processor.Provider, 0, len(merged))
	for _, m := range merged {
		p := processor.Provider{Name: m.Name, PathPrefix: m.PathPrefix, Host: m.Host, Header: m.Header, Rest: m.Rest, Fallback: fallback[m.Name]}
		for _, k := range m.Keys {
			p.Keys = append(p.Keys, processor.ProviderKey{ID: k.ID, Key: k.Secret.Reveal()})
		}
		out = append(out, p)
	}
	return out
}

// rebuild builds and swaps in the policy of config c with snap; on error
// the running policy stays.
func (p *policies) rebuild(c *Config, snap *accounts.Snapshot) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pol, err := p.build(c, snap)
	if err != nil {
		p.log.Error("policy not rebuilt; the running one stays", "err", err)
		return
	}
	p.proc.SetPolicy(pol)
}
