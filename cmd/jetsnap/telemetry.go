package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracenoop "go.opentelemetry.io/otel/trace/noop"
)

// telemetry is the process's OpenTelemetry (DESIGN.md, Observability):
// metrics served for Prometheus by Metrics and, when the OTEL_* variables
// ask for it, pushed by OTLP (or another exporter autoexport knows); spans
// only when a span exporter is asked for.
type telemetry struct {
	Meters  metric.MeterProvider
	Tracers trace.TracerProvider
	Metrics http.Handler // Prometheus text format, for /metrics

	shutdown []func(context.Context) error
}

// newTelemetry builds the providers from the OTEL_* variables read by
// getenv (and by autoexport, which reads the same environment):
//
//   - OTEL_METRICS_EXPORTER / OTEL_TRACES_EXPORTER pick the exporter
//     (otlp, console, none); unset, OTLP is used when an OTLP endpoint is
//     set (OTEL_EXPORTER_OTLP_ENDPOINT or the per-signal one), else none.
//     Prometheus is always served on /metrics, so OTEL_METRICS_EXPORTER=
//     prometheus adds nothing (and starts no second server).
//   - OTEL_SDK_DISABLED=true turns the exporters off (not /metrics).
//   - OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES describe the process
//     (service.name defaults to jetsnap); OTEL_EXPORTER_OTLP_*, and
//     OTEL_TRACES_SAMPLER are read by the exporters and the SDK.
//
// Shutdown flushes and stops what it started.
func newTelemetry(ctx context.Context, getenv func(string) string, log *slog.Logger) (*telemetry, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(serviceAttrs()...),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES override the above
		resource.WithTelemetrySDK(),
	)
	if err != nil {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	// Export failures (an unreachable collector) come here, not to the
	// standard logger: the one piece of global state this sets.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { log.Warn("telemetry export failed", "err", err) }))
	t := &telemetry{}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	prom, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, fmt.Errorf("telemetry: prometheus: %w", err)
	}
	t.Metrics = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	readers := []sdkmetric.Option{sdkmetric.WithResource(res), sdkmetric.WithReader(prom)}
	exporters := []string{"prometheus"}

	disabled := strings.EqualFold(getenv("OTEL_SDK_DISABLED"), "true")
	if name, ok := exporterFor(getenv, "METRICS"); ok && !disabled && name != "prometheus" {
		// With the variable unset (an endpoint set), autoexport's default is otlp.
		r, err := autoexport.NewMetricReader(ctx)
		if err != nil {
			return nil, fmt.Errorf("telemetry: OTEL_METRICS_EXPORTER=%q: %w", getenv("OTEL_METRICS_EXPORTER"), err)
		}
		if !autoexport.IsNoneMetricReader(r) {
			readers = append(readers, sdkmetric.WithReader(r))
			exporters = append(exporters, name)
		}
	}
	mp := sdkmetric.NewMeterProvider(readers...)
	t.Meters = mp
	t.shutdown = append(t.shutdown, mp.Shutdown)

	t.Tracers = tracenoop.NewTracerProvider()
	traces := "off"
	if name, ok := exporterFor(getenv, "TRACES"); ok && !disabled {
		exp, err := autoexport.NewSpanExporter(ctx)
		if err != nil {
			_ = t.Shutdown(ctx)
			return nil, fmt.Errorf("telemetry: OTEL_TRACES_EXPORTER=%q: %w", getenv("OTEL_TRACES_EXPORTER"), err)
		}
		if !autoexport.IsNoneSpanExporter(exp) {
			tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res), sdktrace.WithBatcher(exp))
			t.Tracers = tp
			t.shutdown = append(t.shutdown, tp.Shutdown)
			traces = name
		}
	}
	log.Info("telemetry", "metrics", strings.Join(exporters, ","), "traces", traces)
	return t, nil
}

// exporterFor returns the exporter the environment asks for a signal
// (METRICS or TRACES), and false for none.
func exporterFor(getenv func(string) string, signal string) (string, bool) {
	switch name := strings.TrimSpace(getenv("OTEL_" + signal + "_EXPORTER")); name {
	case "none":
		return "", false
	case "":
		if getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_"+signal+"_ENDPOINT") != "" {
			return "otlp", true
		}
		return "", false
	default:
		return name, true
	}
}

// Shutdown flushes the exporters and stops the providers.
func (t *telemetry) Shutdown(ctx context.Context) error {
	var errs []error
	for i := len(t.shutdown) - 1; i >= 0; i-- {
		errs = append(errs, t.shutdown[i](ctx))
	}
	t.shutdown = nil
	return errors.Join(errs...)
}

// serviceAttrs are the default service.name and, for a released build,
// service.version.
func serviceAttrs() []attribute.KeyValue {
	attrs := []attribute.KeyValue{attribute.String("service.name", "jetsnap")}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		attrs = append(attrs, attribute.String("service.version", bi.Main.Version))
	}
	return attrs
}
