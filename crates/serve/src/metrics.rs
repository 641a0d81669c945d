//! Prometheus metrics: Triton's names where they mean the same thing, so
//! existing dashboards work, and weft's own.
//!
//! Per model and version (labels `model`, `version`):
//! `nv_inference_request_success`, `nv_inference_request_failure` (also
//! labelled `reason`), `nv_inference_count`, `nv_inference_exec_count`,
//! `nv_inference_request_duration_us` (receipt to answer, in the server),
//! `nv_inference_queue_duration_us` (the part of that before the engine
//! took the request) and `nv_inference_compute_infer_duration_us` (the
//! engine's latency: its scheduling queue and the launches; weft
//! interleaves requests' kernels in bundles, so the engine has no separate
//! per-request compute time). weft's own: `weft_slo_met_total`,
//! `weft_slo_attainment`, `weft_rejections_total` by reason, and the
//! engine's figures read at scrape time (`weft_bundles_total`,
//! `weft_bundle_width`, `weft_launches_total`, `weft_background_compiles_total`,
//! `weft_request_path_compiles_total`, `weft_bytes_per_request`,
//! `weft_weight_bytes`, `weft_busy_seconds_total`, `weft_busy_fraction`,
//! `weft_bundle_predicted_us_total`, `weft_bundle_measured_us_total`,
//! `weft_bundle_predictions_total`, `weft_registration_compiles_total`,
//! `weft_prepared_modules`, and per `device`: `weft_device_load`,
//! `weft_device_tenants`, `weft_device_busy_fraction`,
//! `weft_device_bundles_total`), and where each model's tenants run
//! (`weft_tenant_device`, labelled `model`, `version`, `tenant`, `device`).

use std::time::Duration;

use prometheus::{Encoder, Gauge, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};

use crate::models::LoadedModel;

pub struct Metrics {
    registry: Registry,
    success: IntCounterVec,
    failure: IntCounterVec,
    count: IntCounterVec,
    exec_count: IntCounterVec,
    request_us: IntCounterVec,
    queue_us: IntCounterVec,
    compute_us: IntCounterVec,
    slo_met: IntCounterVec,
    slo_attainment: GaugeVec,
    rejections: IntCounterVec,
    bundles: Gauge,
    bundle_width: Gauge,
    launches: Gauge,
    background_compiles: Gauge,
    request_path_compiles: Gauge,
    bytes_per_request: Gauge,
    weight_bytes: Gauge,
    busy_seconds: Gauge,
    busy_fraction: Gauge,
    predicted_us: Gauge,
    measured_us: Gauge,
    predictions: Gauge,
    registration_compiles: Gauge,
    prepared_modules: Gauge,
    device_load: GaugeVec,
    device_tenants: GaugeVec,
    device_busy: GaugeVec,
    device_bundles: GaugeVec,
    tenant_device: GaugeVec,
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(registry: &Registry, name: &str, help: &str) -> Result<Gauge, prometheus::Error> {
    let g = Gauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

const MV: &[&str] = &["model", "version"];

impl Metrics {
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let r = Registry::new();
        let slo_attainment = GaugeVec::new(
            Opts::new("weft_slo_attainment", "Requests answered within the model's objective over requests answered"),
            MV,
        )?;
        r.register(Box::new(slo_attainment.clone()))?;
        Ok(Metrics {
            success: counter(&r, "nv_inference_request_success", "Successful inference requests", MV)?,
            failure: counter(
                &r,
                "nv_inference_request_failure",
                "Failed inference requests",
                &["model", "version", "reason"],
            )?,
            count: counter(&r, "nv_inference_count", "Inferences performed", MV)?,
            exec_count: counter(&r, "nv_inference_exec_count", "Model executions performed", MV)?,
            request_us: counter(
                &r,
                "nv_inference_request_duration_us",
                "Cumulative request duration, receipt to answer, us",
                MV,
            )?,
            queue_us: counter(
                &r,
                "nv_inference_queue_duration_us",
                "Cumulative time requests waited in the server before the engine took them, us",
                MV,
            )?,
            compute_us: counter(
                &r,
                "nv_inference_compute_infer_duration_us",
                "Cumulative engine latency (scheduling queue and launches), us",
                MV,
            )?,
            slo_met: counter(&r, "weft_slo_met_total", "Requests answered within the model's objective", MV)?,
            slo_attainment,
            rejections: counter(&r, "weft_rejections_total", "Requests refused, by reason", &["model", "reason"])?,
            bundles: gauge(&r, "weft_bundles_total", "Bundles the scheduler formed")?,
            bundle_width: gauge(&r, "weft_bundle_width", "Mean slots per bundle")?,
            launches: gauge(&r, "weft_launches_total", "Kernel launches")?,
            background_compiles: gauge(&r, "weft_background_compiles_total", "Fused modules built in the background")?,
            request_path_compiles: gauge(
                &r,
                "weft_request_path_compiles_total",
                "Launches that had to run a compiler on the request path (0 expected)",
            )?,
            bytes_per_request: gauge(&r, "weft_bytes_per_request", "Bytes moved between host and device per request")?,
            weight_bytes: gauge(&r, "weft_weight_bytes", "Bytes of weights held on the device")?,
            busy_seconds: gauge(&r, "weft_busy_seconds_total", "Time the executor spent in launches, s")?,
            busy_fraction: gauge(
                &r,
                "weft_busy_fraction",
                "Executor time in launches over wall time since the engine started (mean over devices)",
            )?,
            predicted_us: gauge(
                &r,
                "weft_bundle_predicted_us_total",
                "Predicted time of the bundles that ran as predicted (one launch), us",
            )?,
            measured_us: gauge(
                &r,
                "weft_bundle_measured_us_total",
                "Measured time of the same bundles as weft_bundle_predicted_us_total, us",
            )?,
            predictions: gauge(
                &r,
                "weft_bundle_predictions_total",
                "Bundles counted in weft_bundle_predicted_us_total and weft_bundle_measured_us_total",
            )?,
            registration_compiles: gauge(
                &r,
                "weft_registration_compiles_total",
                "One-slot kernels prepared (compiled or loaded from cache) when models were loaded",
            )?,
            prepared_modules: gauge(&r, "weft_prepared_modules", "Compiled modules the executors hold")?,
            device_load: gauge_vec(
                &r,
                "weft_device_load",
                "Predicted load of a device: sum over its tenants of predicted solo latency over objective",
                &["device"],
            )?,
            device_tenants: gauge_vec(&r, "weft_device_tenants", "Tenants placed on a device", &["device"])?,
            device_busy: gauge_vec(
                &r,
                "weft_device_busy_fraction",
                "A device's executor time in launches over wall time",
                &["device"],
            )?,
            device_bundles: gauge_vec(&r, "weft_device_bundles_total", "Bundles a device ran", &["device"])?,
            tenant_device: gauge_vec(
                &r,
                "weft_tenant_device",
                "1 for the device each tenant of a model runs on",
                &["model", "version", "tenant", "device"],
            )?,
            registry: r,
        })
    }

    pub fn record_success(&self, model: &LoadedModel, elapsed: Duration, engine: Duration) {
        let l = [model.name.as_str(), model.version.as_str()];
        self.success.with_label_values(&l).inc();
        self.count.with_label_values(&l).inc();
        self.exec_count.with_label_values(&l).inc();
        let total = elapsed.as_micros() as u64;
        let engine = (engine.as_micros() as u64).min(total);
        self.request_us.with_label_values(&l).inc_by(total);
        self.queue_us.with_label_values(&l).inc_by(total - engine);
        self.compute_us.with_label_values(&l).inc_by(engine);
    }

    /// Records where `model`'s tenants run (on load).
    pub fn record_placement(&self, model: &LoadedModel, engine: &weft::Engine) {
        for t in &model.tenants {
            if let Ok(device) = engine.device_of(*t) {
                let (tenant, device) = (t.0.to_string(), device.to_string());
                self.tenant_device.with_label_values(&[&model.name, &model.version, &tenant, &device]).set(1.0);
            }
        }
    }

    /// Forgets where `model`'s tenants ran (on unload or replacement).
    pub fn forget_placement(&self, model: &LoadedModel, engine: &weft::Engine) {
        for t in &model.tenants {
            if let Ok(device) = engine.device_of(*t) {
                let (tenant, device) = (t.0.to_string(), device.to_string());
                let _ = self.tenant_device.remove_label_values(&[&model.name, &model.version, &tenant, &device]);
            }
        }
    }

    pub fn record_failure(&self, model: &str, version: &str, reason: &str) {
        self.failure.with_label_values(&[model, version, reason]).inc();
        if matches!(reason, "queue_full" | "admission" | "draining") {
            self.rejections.with_label_values(&[model, reason]).inc();
        }
    }

    pub fn record_slo(&self, model: &LoadedModel, met: bool) {
        let l = [model.name.as_str(), model.version.as_str()];
        if met {
            self.slo_met.with_label_values(&l).inc();
        }
        let answered = self.success.with_label_values(&l).get() + 1;
        let met_total = self.slo_met.with_label_values(&l).get();
        self.slo_attainment.with_label_values(&l).set(met_total as f64 / answered as f64);
    }

    /// The Prometheus text exposition, with the engine's figures as of now.
    pub fn render(&self, engine: &weft::Engine) -> String {
        let s = engine.stats();
        self.bundles.set(s.serve.bundles as f64);
        self.bundle_width.set(if s.serve.bundles == 0 { 0.0 } else { s.serve.slots as f64 / s.serve.bundles as f64 });
        self.launches.set(s.serve.launches as f64);
        self.background_compiles.set(s.serve.background_prepares as f64);
        self.request_path_compiles.set(s.request_path_compiles as f64);
        self.bytes_per_request.set(s.bytes_per_request);
        self.weight_bytes.set(s.weight_bytes as f64);
        self.busy_seconds.set(s.serve.busy_us / 1e6);
        self.busy_fraction.set(s.busy_fraction);
        self.predicted_us.set(s.serve.predicted_us);
        self.measured_us.set(s.serve.predicted_measured_us);
        self.predictions.set(s.serve.predicted_bundles as f64);
        self.registration_compiles.set(s.serve.registration_prepares as f64);
        self.prepared_modules.set(s.prepared_modules as f64);
        for d in &s.devices {
            let device = d.device.to_string();
            let l = [device.as_str()];
            self.device_load.with_label_values(&l).set(d.load);
            self.device_tenants.with_label_values(&l).set(d.tenants.len() as f64);
            self.device_busy.with_label_values(&l).set(d.stats.busy_fraction);
            self.device_bundles.with_label_values(&l).set(d.stats.serve.bundles as f64);
        }
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for well-formed metric families.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}
