//! Counters for `GET /metrics` (Prometheus text format): joins, webhook events by type and
//! outcome, reconciliation corrections, LiveKit restarts.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JoinLabels {
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    pub event: String,
    pub outcome: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub joins: Family<JoinLabels, Counter>,
    pub webhook_events: Family<WebhookLabels, Counter>,
    pub reconcile_corrections: Counter,
    pub reconcile_runs: Counter,
    pub livekit_restarts: Gauge<i64, std::sync::atomic::AtomicI64>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("bedrud");
        let joins = Family::<JoinLabels, Counter>::default();
        let webhook_events = Family::<WebhookLabels, Counter>::default();
        let reconcile_corrections = Counter::<u64, AtomicU64>::default();
        let reconcile_runs = Counter::<u64, AtomicU64>::default();
        let livekit_restarts = Gauge::default();
        registry.register("joins", "Join tokens issued", joins.clone());
        registry.register(
            "webhook_events",
            "LiveKit webhook events by type and outcome",
            webhook_events.clone(),
        );
        registry.register(
            "reconcile_corrections",
            "State corrections made by reconciliation",
            reconcile_corrections.clone(),
        );
        registry.register(
            "reconcile_runs",
            "Reconciliation runs",
            reconcile_runs.clone(),
        );
        registry.register(
            "livekit_restarts",
            "Restarts of the embedded LiveKit",
            livekit_restarts.clone(),
        );
        Metrics {
            registry,
            joins,
            webhook_events,
            reconcile_corrections,
            reconcile_runs,
            livekit_restarts,
        }
    }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String cannot fail");
        out
    }

    pub fn webhook(&self, event: &str, outcome: &'static str) {
        self.webhook_events
            .get_or_create(&WebhookLabels {
                event: event.to_string(),
                outcome,
            })
            .inc();
    }
}
