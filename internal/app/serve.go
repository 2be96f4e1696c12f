package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tollgate-ai/tollgate/accounts"
	"github.com/tollgate-ai/tollgate/admin"
	"github.com/tollgate-ai/tollgate/alerts"
	"github.com/tollgate-ai/tollgate/breaker"
	"github.com/tollgate-ai/tollgate/ledger"
	"github.com/tollgate-ai/tollgate/processor"
	"github.com/tollgate-ai/tollgate/quota"
	"github.com/tollgate-ai/tollgate/telemetry"
)

// Hooks let a caller that runs tollgate in-process learn what it does.
type Hooks struct {
	// Listening is called once both listeners are bound, with their
	// addresses (useful with port 0).
	Listening func(grpcAddr, adminAddr string)
}

// Serve runs tollgate with config c until ctx is done, then drains: the
// gRPC server stops taking streams, the streams in flight finish and
// settle, and the store flushes what it could not send.
func Serve(ctx context.Context, c *Config, log *slog.Logger, getenv func(string) string, reload <-chan *Config, hooks Hooks) error {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(c.Server.GCPercent)
	}
	store, err := ledger.Open(ctx, c.Store, ledger.Options{Logger: log})
	if err != nil {
		return fmt.Errorf("cannot open the store: %w", err)
	}
	defer func() {
		if err := store.Close(); err != nil {
			log.Error("cannot close the store cleanly", "err", err)
		}
	}()
	acc, err := accounts.Open(ctx, c.Accounts, accounts.Options{Client: store.Client(), KeyPrefix: c.Store.Redis.KeyPrefix, Getenv: getenv, Logger: log})
	if err != nil {
		return fmt.Errorf("cannot open the accounts: %w", err)
	}
	defer acc.Close()
	pols := &policies{getenv: getenv, log: log}
	policy, err := pols.build(c, acc.Snapshot())
	if err != nil {
		return err
	}

	var proc *processor.Server
	tel, err := telemetry.New(ctx, c.Telemetry, telemetry.Options{
		Consumers: func() []string { return proc.Policy().Consumers.Names() },
		Secrets:   func() []string { return proc.Policy().ProviderSecrets() },
		IsKey: func(s string) bool {
			_, ok := proc.Policy().Consumers.Authenticate(s, time.Now())
			return ok
		},
		Logger: log,
		Getenv: getenv,
	})
	if err != nil {
		return fmt.Errorf("cannot start telemetry: %w", err)
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := tel.Shutdown(sctx); err != nil {
			log.Warn("telemetry did not flush cleanly", "err", err)
		}
	}()
	tel.SetSpoolDepth(store.SpoolDepth)
	breakers := breaker.New(c.Breaker, breaker.Options{
		OnChange: func(provider string, from, to breaker.State) {
			log.Warn("provider circuit breaker changed state", "provider", provider, "from", from.String(), "to", to.String())
		},
	})
	breakers.Track(providerNames(c)...)
	var al *alerts.Alerts
	if c.Alerts.Enabled() {
		al, err = alerts.New(alerts.Options{Config: c.Alerts, Store: alerts.StoreFor(store.Client(), time.Now),
			KeyPrefix: c.Store.Redis.KeyPrefix + "alert:", Logger: log, Getenv: getenv})
		if err != nil {
			return fmt.Errorf("cannot start alerts: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := al.Close(sctx); err != nil {
				log.Warn("alerts not all delivered", "err", err)
			}
		}()
	}
	proc = processor.New(processor.Options{Store: store, Logger: log, Telemetry: tel, Breakers: breakers, Alerts: al}, policy)
	pols.proc = proc
	go acc.Watch(ctx, func(s *accounts.Snapshot) { pols.rebuild(pols.cfg.Load(), s) })
	// WaitForHandlers makes Stop wait for the handlers, so that streams cut
	// at the drain timeout still settle before the store closes.
	grpcSrv := grpc.NewServer(grpc.WaitForHandlers(true), grpc.ForceServerCodecV2(processor.Codec()))
	extprocv3.RegisterExternalProcessorServer(grpcSrv, proc)
	healthSrv := health.NewServer()
	healthpb.RegisterHealthServer(grpcSrv, healthSrv)

	api := http.NewServeMux()
	api.Handle("/v1/", quota.NewAPI(quota.APIOptions{
		Policy:    func() *quota.Policy { return proc.Policy().Quota },
		Store:     store,
		Consumers: func() []string { return proc.Policy().Consumers.Names() },
	}))
	accAPI := accounts.NewAPI(accounts.APIOptions{Store: acc, Base: pols.base, ProviderHealth: proc.ProviderHealth,
		ProviderResting: proc.ProviderResting, Logger: log})
	for _, prefix := range accounts.Prefixes {
		api.Handle(prefix, accAPI)
	}
	adminHandler, err := admin.New(admin.Options{Config: c.Admin, Getenv: getenv, Ready: store.Ping, API: api, Metrics: tel.MetricsHandler()})
	if err != nil {
		return err
	}

	grpcLis, err := net.Listen("tcp", c.Server.GRPCAddr)
	if err != nil {
		return fmt.Errorf("cannot listen on server.grpc_addr %s: %w", c.Server.GRPCAddr, err)
	}
	adminLis, err := net.Listen("tcp", c.Server.AdminAddr)
	if err != nil {
		grpcLis.Close()
		return fmt.Errorf("cannot listen on server.admin_addr %s: %w", c.Server.AdminAddr, err)
	}
	adminSrv := &http.Server{Handler: adminHandler, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	go func() { errc <- grpcSrv.Serve(grpcLis) }()
	go func() {
		if err := adminSrv.Serve(adminLis); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	healthSrv.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	log.Info("tollgate is serving", "grpc_addr", grpcLis.Addr().String(), "admin_addr", adminLis.Addr().String(), "store", c.Store.Type)
	if hooks.Listening != nil {
		hooks.Listening(grpcLis.Addr().String(), adminLis.Addr().String())
	}

	var serveErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err := <-errc:
			serveErr = fmt.Errorf("server stopped: %w", err)
			break loop
		case nc := <-reload:
			pols.rebuild(nc, acc.Snapshot())
			breakers.Reconfigure(nc.Breaker)
			if err := al.Update(nc.Alerts); err != nil {
				log.Error("alerts config reload refused", "err", err)
			}
			breakers.Track(providerNames(nc)...)
			log.Info("config reloaded")
		}
	}

	// Drain. Envoy's health checks see NOT_SERVING and stop opening
	// streams here; the open ones run to their end and settle.
	healthSrv.Shutdown()
	log.Info("draining", "timeout", c.Server.DrainTimeout.String())
	stopped := make(chan struct{})
	go func() { grpcSrv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(c.Server.DrainTimeout):
		log.Warn("drain timeout: cancelling the streams still open (they settle what they saw)")
		grpcSrv.Stop()
		<-stopped
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = adminSrv.Shutdown(shutdownCtx)
	log.Info("stopped")
	return serveErr
}

func providerNames(c *Config) []string {
	names := make([]string, 0, len(c.Providers))
	for _, p := range c.Providers {
		names = append(names, p.Name)
	}
	return names
}
