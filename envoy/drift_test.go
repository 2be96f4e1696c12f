package envoy_test

import (
	"maps"
	"slices"
	"strings"
	"testing"
)

// TestManifestChecksCatchDrift breaks one reference at a time in a copy of
// the files and expects the named check (or decoding, "load") to refuse it.
func TestManifestChecksCatchDrift(t *testing.T) {
	tests := []struct {
		file, old, new, check string
	}{
		{"Dockerfile", "EXPOSE 50051 8081", "EXPOSE 50052 8081", "dockerfile"},
		{"Dockerfile", "USER 65532:65532", "USER nonroot", "dockerfile"},
		{"Dockerfile", "FROM --platform=$BUILDPLATFORM golang:1.26 AS build", "FROM --platform=$BUILDPLATFORM golang:1.25 AS build", "dockerfile"},
		{"Dockerfile", `ENTRYPOINT ["/tollgate"]`, `ENTRYPOINT ["/bin/tollgate"]`, "dockerfile"},
		{"Dockerfile", "CGO_ENABLED=0 ", "", "dockerfile"},
		{"Dockerfile", `CMD ["serve", "--config", "/etc/tollgate/tollgate.yaml"]`, `CMD ["serve", "--config", "/etc/tollgate/config.yaml"]`, "config mount"},
		{".dockerignore", "**/*.test", "**/*.go", "dockerignore"},
		{".dockerignore", "**/.env\n**/*.env\n", "", "dockerignore"},
		{"envoy/docker-compose.yaml", "./envoy.yaml:/etc/envoy/envoy.yaml:ro", "./compose/envoy.yaml:/etc/envoy/envoy.yaml:ro", "compose"},
		{"envoy/docker-compose.yaml", "envoyproxy/envoy:v1.36-latest", "envoyproxy/envoy:v1.35-latest", "compose"},
		{"envoy/docker-compose.yaml", "\n  tollgate:\n", "\n  extproc:\n", "compose"},
		{"envoy/docker-compose.yaml", "      TEAM_B_KEY: ${TEAM_B_KEY:-sk-team-b-demo}\n", "", "compose"},
		{"envoy/docker-compose.yaml", "stop_grace_period: 16m", "stop_grace_period: 10s", "compose"},
		{"envoy/docker-compose.yaml", "restart: unless-stopped", "restrat: unless-stopped", "load"},
		{"envoy/compose/tollgate.yaml", `addrs: ["redis:6379"]`, `addrs: ["127.0.0.1:6379"]`, "compose"},
		{"envoy/compose/tollgate.yaml", `grpc_addr: ":50051"`, `grpc_addr: ":50052"`, "compose"},
		{"envoy/k8s/kustomization.yaml", "  - pdb.yaml\n", "", "load"},
		{"envoy/k8s/kustomization.yaml", "  - hpa.yaml\n", "  - hpa.yaml\n  - extra.yaml\n", "load"},
		{"envoy/k8s/orphan.yaml", "", "apiVersion: v1\nkind: Namespace\nmetadata: {name: orphan}\n", "kustomization"},
		{"envoy/k8s/namespace.yaml", "name: tollgate", "name: tollgate-system", "kustomization"},
		{"envoy/k8s/deployment.yaml", "containerPort: 50051", "containerPort: 50052", "ports"},
		{"envoy/k8s/deployment.yaml", "readinessProbe:", "readinesProbe:", "load"},
		{"envoy/k8s/deployment.yaml", "            grpc:\n              port: 50051\n            periodSeconds: 5", "            grpc:\n              port: 50055\n            periodSeconds: 5", "probes"},
		{"envoy/k8s/deployment.yaml", "path: /healthz", "path: /health", "probes"},
		{"envoy/k8s/deployment.yaml", "mountPath: /etc/tollgate\n", "mountPath: /etc/tollgate.d\n", "config mount"},
		{"envoy/k8s/deployment.yaml", "name: tollgate-config", "name: tollgate-cfg", "config mount"},
		{"envoy/k8s/deployment.yaml", "key: TEAM_A_KEY}}", "key: TEAM_A}}", "secret refs"},
		{"envoy/k8s/deployment.yaml", "            - name: OPENAI_API_KEY\n              valueFrom: {secretKeyRef: {name: tollgate-secrets, key: OPENAI_API_KEY}}\n", "", "config valid"},
		{"envoy/k8s/deployment.yaml", "            - name: REDIS_PASSWORD\n              valueFrom: {secretKeyRef: {name: tollgate-secrets, key: REDIS_PASSWORD}}\n", "", "config valid"},
		{"envoy/k8s/deployment.yaml", "terminationGracePeriodSeconds: 960", "terminationGracePeriodSeconds: 300", "graceful stop"},
		{"envoy/k8s/deployment.yaml", "seconds: 15", "seconds: 90", "graceful stop"},
		{"envoy/k8s/deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "security"},
		{"envoy/k8s/deployment.yaml", "runAsUser: 65532", "runAsUser: 1000", "security"},
		{"envoy/k8s/deployment.yaml", "mountPath: /var/lib/tollgate/spool", "mountPath: /var/lib/spool", "config valid"},
		{"envoy/k8s/deployment.yaml", "replicas: 2", "replicas: 1", "selectors and scaling"},
		{"envoy/k8s/deployment.yaml", "      labels:\n        app.kubernetes.io/name: tollgate\n        app.kubernetes.io/component: ext-proc\n      annotations:", "      labels:\n        app.kubernetes.io/name: tollgate-pod\n        app.kubernetes.io/component: ext-proc\n      annotations:", "selectors and scaling"},
		{"envoy/k8s/deployment.yaml", `prometheus.io/port: "8081"`, `prometheus.io/port: "9090"`, "prometheus"},
		{"envoy/k8s/service.yaml", "targetPort: admin", "targetPort: metrics", "ports"},
		{"envoy/k8s/service.yaml", "appProtocol: kubernetes.io/h2c", "appProtocol: http", "ports"},
		{"envoy/k8s/service.yaml", "  selector:\n    app.kubernetes.io/name: tollgate", "  selector:\n    app: tollgate", "selectors and scaling"},
		{"envoy/k8s/service.yaml", "port: 50051", "port: 50052", "envoyfilter"},
		{"envoy/k8s/service.yaml", "port: 50051", "port: 50052", "envoy gateway"},
		{"envoy/k8s/service.yaml", "  name: tollgate\n  namespace: tollgate", "  name: extproc\n  namespace: tollgate", "envoyfilter"},
		{"envoy/k8s/secret.yaml", "  TEAM_B_KEY: REPLACE-ME-team-b-key\n", "", "secret refs"},
		{"envoy/k8s/secret.yaml", "REPLACE-ME-team-b-key", "REPLACE-ME-team-a-key", "config valid"},
		{"envoy/k8s/hpa.yaml", "    kind: Deployment\n    name: tollgate", "    kind: Deployment\n    name: tollgate-v2", "selectors and scaling"},
		{"envoy/k8s/hpa.yaml", "minReplicas: 2", "minReplicas: 1", "selectors and scaling"},
		{"envoy/k8s/pdb.yaml", "minAvailable: 1", "minAvailable: 2", "selectors and scaling"},
		{"envoy/k8s/pdb.yaml", "      app.kubernetes.io/name: tollgate", "      app.kubernetes.io/name: redis", "selectors and scaling"},
		{"envoy/k8s/config/tollgate.yaml", "drain_timeout: 15m", "drain_timeout: 5m", "graceful stop"},
		{"envoy/k8s/config/tollgate.yaml", "drain_timeout: 15m", "drain_timeout: 20m", "graceful stop"},
		{"envoy/k8s/config/tollgate.yaml", `admin_addr: ":8081"`, `admin_addr: ":9091"`, "ports"},
		{"envoy/k8s/config/tollgate.yaml", "  type: redis", "  type: memory", "config valid"},
		{"envoy/k8s/config/tollgate.yaml", "unknown_paths: pass", "unknown_path: pass", "config valid"},
		{"envoy/k8s/config/tollgate.yaml", `addrs: ["redis:6379"]`, `addrs: ["redis-master:6379"]`, "redis"},
		{"envoy/k8s/redis/redis.yaml", "      port: 6379", "      port: 6380", "redis"},
		{"envoy/k8s/redis/redis.yaml", "key: REDIS_PASSWORD}}\n            # redis-cli", "key: REDIS_PASS}}\n            # redis-cli", "secret refs"},
		{"envoy/istio/envoyfilter.yaml", "cluster_name: outbound|50051||tollgate.tollgate.svc.cluster.local", "cluster_name: outbound|50051||tollgate.default.svc.cluster.local", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "message_timeout: 1s", "message_timeout: 2s", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "failure_mode_allow: false", "failure_mode_allow: true", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "response_body_mode: STREAMED", "response_body_mode: BUFFERED", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "untyped: [tollgate]", "untyped: [tollgate, envoy.lb]", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "operation: INSERT_BEFORE", "operation: INSERT_AFTER", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "request_body_buffer_limit: 33554432", "request_body_buffer_limit: 1048576", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "allow_mode_override: true", "allow_mode_overide: true", "envoyfilter"},
		{"envoy/istio/envoyfilter.yaml", "applyTo: HTTP_FILTER", "applyTo: HTTP_FILTERS", "load"},
		{"envoy/istio/higress-envoyfilter.yaml", "request_header_mode: SEND", "request_header_mode: SKIP", "envoyfilter"},
		{"envoy/envoy-gateway/extension-policy.yaml", "          port: 50051", "          port: 8081", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "          namespace: tollgate", "          namespace: default", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "body: Buffered", "body: Streamed", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "failOpen: false", "failOpen: true", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "messageTimeout: 1s", "messageTimeout: 200ms", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "writableNamespaces: [tollgate]", "writableNamespaces: [tollgate-metadata]", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "allowModeOverride: true", "allowModeOverride: false", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "maxParallelRequests: 100000", "maxParallelRequests: 1024", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "      name: llm\n", "      name: chat\n", "envoy gateway"},
		{"envoy/envoy-gateway/extension-policy.yaml", "failOpen: false", "failOpn: false", "load"},
		{"envoy/envoy-gateway/reference-grant.yaml", "      namespace: llm-gateway", "      namespace: default", "envoy gateway"},
		{"envoy/envoy-gateway/route.yaml", "request: 900s", "request: 60s", "envoy gateway"},
		{"envoy/envoy-gateway/route.yaml", "limit: 32Mi", "limit: 1Mi", "envoy gateway"},
	}
	orig := readRepo(t)
	for _, tt := range tests {
		t.Run(tt.check+": "+tt.file+": "+firstLine(tt.old), func(t *testing.T) {
			files := maps.Clone(orig)
			if !strings.Contains(string(files[tt.file]), tt.old) {
				t.Fatalf("%s no longer contains %q; update the mutation", tt.file, tt.old)
			}
			files[tt.file] = []byte(strings.Replace(string(files[tt.file]), tt.old, tt.new, 1))
			b, err := loadBundle(files)
			if tt.check == "load" {
				t.Logf("error: %v", err)
				if err == nil {
					t.Fatal("the broken copy was decoded without error")
				}
				return
			}
			if err != nil {
				t.Fatalf("the broken copy should load and fail %q, but load failed: %v", tt.check, err)
			}
			i := slices.IndexFunc(checks, func(c struct {
				name string
				fn   func(*bundle) error
			}) bool {
				return c.name == tt.check
			})
			if i < 0 {
				t.Fatalf("no check %q", tt.check)
			}
			err = checks[i].fn(b)
			t.Logf("error: %v", err)
			if err == nil {
				t.Fatalf("check %q passed with %q replaced by %q", tt.check, tt.old, tt.new)
			}
		})
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	l, _, _ := strings.Cut(s, "\n")
	return l
}
