package telemetry

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

var serviceName = attribute.Key("service.name")

// otlpOn reports whether a signal (METRICS or TRACES) is exported by OTLP:
// an endpoint is configured for it and its exporter is not "none".
func otlpOn(getenv func(string) string, signal string) bool {
	if getenv("OTEL_"+signal+"_EXPORTER") == "none" {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != ""
}

// otlpProtocol is the signal's OTLP protocol: grpc or http/protobuf, the
// specification's default.
func otlpProtocol(getenv func(string) string, signal string) string {
	if v := getenv("OTEL_EXPORTER_OTLP_" + signal + "_PROTOCOL"); v != "" {
		return v
	}
	if v := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); v != "" {
		return v
	}
	return "http/protobuf"
}

func newOTLPMetricExporter(ctx context.Context, protocol string) (sdkmetric.Exporter, error) {
	var (
		exp sdkmetric.Exporter
		err error
	)
	switch protocol {
	case "grpc":
		exp, err = otlpmetricgrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlpmetrichttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL: %q is not grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot start the OTLP metric exporter: %w", err)
	}
	return exp, nil
}

func newOTLPSpanExporter(ctx context.Context, protocol string) (sdktrace.SpanExporter, error) {
	var (
		exp sdktrace.SpanExporter
		err error
	)
	switch protocol {
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	case "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	default:
		return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: %q is not grpc or http/protobuf", protocol)
	}
	if err != nil {
		return nil, fmt.Errorf("cannot start the OTLP span exporter: %w", err)
	}
	return exp, nil
}

// resourceAttributes parses OTEL_RESOURCE_ATTRIBUTES: comma-separated
// key=value pairs, values percent-encoded.
func resourceAttributes(v string) ([]attribute.KeyValue, error) {
	var kvs []attribute.KeyValue
	for _, pair := range strings.Split(v, ",") {
		if strings.TrimSpace(pair) == "" {
			continue
		}
		k, val, ok := strings.Cut(pair, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: %q is not key=value", pair)
		}
		val, err := url.PathUnescape(strings.TrimSpace(val))
		if err != nil {
			return nil, fmt.Errorf("OTEL_RESOURCE_ATTRIBUTES: value of %s: %w", k, err)
		}
		kvs = append(kvs, attribute.String(k, val))
	}
	return kvs, nil
}
