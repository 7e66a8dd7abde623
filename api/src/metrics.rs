//! `/metrics`: counters and histograms recorded anywhere in the process
//! through the `metrics` facade (requests here, executor steps in
//! `executor`, group-commit batches in `eventstore`), kept by
//! `metrics-exporter-prometheus`'s recorder and rendered as Prometheus text
//! by the axum route in `ops` — the exporter runs no HTTP listener of its
//! own, so `/metrics` is served, and protected, like every other route.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Request and step latencies, in seconds: 0.5 ms (a cached read) to a
/// minute (a long copy).
const SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// Jobs per group commit: 1 to the writer's cap (256).
const BATCH: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's recorder, installed on first use. None when another
/// recorder was installed first (a test process embedding two routers):
/// `/metrics` then shows only the log's gauges.
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let built = PrometheusBuilder::new()
                .set_buckets(SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("blockledger_eventstore_batch_jobs".into()),
                        BATCH,
                    )
                })
                .and_then(|b| b.install_recorder());
            match built {
                Ok(h) => {
                    // Histograms are drained into their buckets by upkeep;
                    // without a listener the exporter leaves it to us.
                    let keep = h.clone();
                    let spawned = std::thread::Builder::new()
                        .name("metrics-upkeep".into())
                        .spawn(move || loop {
                            std::thread::sleep(Duration::from_secs(5));
                            keep.run_upkeep();
                        });
                    if let Err(e) = spawned {
                        tracing::warn!(error = %e, "metrics upkeep thread not started");
                    }
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .as_ref()
}

/// Inside routing (a `route_layer`): hands the matched route template to
/// the outer request middleware through the response, so latencies are
/// labelled by `/v3/{project_id}/volumes/{volume_id}`, never by raw paths
/// (whose ids would make one series per volume).
pub(crate) async fn tag_route(req: Request, next: Next) -> Response {
    let route = req.extensions().get::<MatchedPath>().cloned();
    let mut resp = next.run(req).await;
    if let Some(r) = route {
        resp.extensions_mut().insert(r);
    }
    resp
}

/// Records one served request: its method, route template ("unmatched"
/// for the fallback) and status.
pub(crate) fn record_request(method: &str, resp: &Response, elapsed: Duration) {
    let route = resp
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_owned();
    metrics::histogram!(
        "blockledger_http_request_duration_seconds",
        "method" => method.to_owned(),
        "route" => route,
        "status" => resp.status().as_str().to_owned(),
    )
    .record(elapsed.as_secs_f64());
}
