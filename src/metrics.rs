//! What the service counts and times, for `GET /metrics` (Prometheus text format).
//!
//! One process-wide set ([`get`]), so that the layers that do the work — the REST front, the ISO 8583
//! front, the HSM door, the SQLite writer, token issuance and payments — count where it happens
//! without being handed a registry. Labels are route patterns, MTIs, response codes, HSM operation
//! names and pool names: never a path, a field value or a PAN.

use std::sync::OnceLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    pub route: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct IsoLabels {
    pub mti: &'static str,
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MtiLabel {
    pub mti: &'static str,
}

/// The HTTP methods a label may name; any other (a client may send any token as its method) is
/// counted as `other`, so no client chooses what `/metrics` shows.
pub(crate) fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];
    KNOWN.into_iter().find(|m| *m == method).unwrap_or("other")
}

/// The MTIs a label may name: the ones tsp answers or is answered with; any other is `other`.
fn mti_label(mti: &str) -> &'static str {
    const KNOWN: [&str; 16] = [
        "0100", "0110", "0200", "0201", "0210", "0400", "0401", "0410", "0420", "0421", "0430", "0800", "0810", "0120",
        "0220", "0230",
    ];
    KNOWN.into_iter().find(|m| *m == mti).unwrap_or("other")
}

/// A response code as a label: two characters tsp itself chose, or `none`; anything else is `other`.
fn code_label(code: &str) -> String {
    let ok = code == "none" || (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphanumeric()));
    if ok { code.to_string() } else { "other".into() }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    pub op: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub pool: &'static str,
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FrontLabel {
    pub front: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency() -> Histogram {
    // 50 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_seconds: Histograms<RouteLabel>,
    pub iso_requests: Family<IsoLabels, Counter>,
    pub iso_seconds: Histograms<MtiLabel>,
    pub hsm_operations: Family<OpLabels, Counter>,
    pub hsm_seconds: Histograms<OpLabel>,
    pub db_connections: Family<PoolLabels, Gauge>,
    pub db_commits: Counter,
    pub db_writes_per_commit: Histogram,
    pub tokens_issued: Counter,
    pub tokens_consumed: Family<KindLabel, Counter>,
    pub connections_refused: Family<FrontLabel, Counter>,
    pub auth_refused: Counter,
}

impl Metrics {
    fn new() -> Metrics {
        let mut registry = Registry::with_prefix("tsp");
        let m = Metrics {
            http_requests: Family::default(),
            http_seconds: Family::new_with_constructor(latency),
            iso_requests: Family::default(),
            iso_seconds: Family::new_with_constructor(latency),
            hsm_operations: Family::default(),
            hsm_seconds: Family::new_with_constructor(latency),
            db_connections: Family::default(),
            db_commits: Counter::default(),
            db_writes_per_commit: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            tokens_issued: Counter::default(),
            tokens_consumed: Family::default(),
            connections_refused: Family::default(),
            auth_refused: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "REST requests by method, route pattern and status",
            m.http_requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "REST request latency by route pattern",
            m.http_seconds.clone(),
        );
        registry.register("iso_requests", "ISO 8583 requests by MTI and response code (DE39)", m.iso_requests.clone());
        registry.register("iso_request_duration_seconds", "ISO 8583 request latency by MTI", m.iso_seconds.clone());
        registry.register("hsm_operations", "HSM operations by name and outcome", m.hsm_operations.clone());
        registry.register("hsm_operation_duration_seconds", "HSM operation latency by name", m.hsm_seconds.clone());
        registry.register("db_connections", "Database connections by pool and state", m.db_connections.clone());
        registry.register("db_group_commits", "SQLite group commits (one fsync each)", m.db_commits.clone());
        registry.register(
            "db_writes_per_commit",
            "Writes sharing one SQLite group commit",
            m.db_writes_per_commit.clone(),
        );
        registry.register("tokens_issued", "One-time tokens issued", m.tokens_issued.clone());
        registry.register(
            "tokens_consumed",
            "Tokens consumed by approved payments, by instrument kind",
            m.tokens_consumed.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections refused at a front's connection cap, by front (http, iso)",
            m.connections_refused.clone(),
        );
        registry.register(
            "auth_refused",
            "API keys refused (unknown, revoked or wrong secret)",
            m.auth_refused.clone(),
        );
        Metrics { registry, ..m }
    }

    /// A REST request's outcome.
    pub fn http(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = HttpLabels { method: method_label(method), route: route.to_string(), status };
        self.http_requests.get_or_create(&labels).inc();
        self.http_seconds.get_or_create(&RouteLabel { route: route.to_string() }).observe(took.as_secs_f64());
    }

    /// An ISO 8583 request's outcome (`code` is DE39 of the answer, or `none`).
    pub fn iso(&self, mti: &str, code: &str, took: Duration) {
        let mti = mti_label(mti);
        self.iso_requests.get_or_create(&IsoLabels { mti, code: code_label(code) }).inc();
        self.iso_seconds.get_or_create(&MtiLabel { mti }).observe(took.as_secs_f64());
    }

    /// One HSM call.
    pub fn hsm(&self, op: &'static str, ok: bool, took: Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.hsm_operations.get_or_create(&OpLabels { op, outcome }).inc();
        self.hsm_seconds.get_or_create(&OpLabel { op }).observe(took.as_secs_f64());
    }

    /// One SQLite group commit covering `writes` writes.
    pub fn commit(&self, writes: usize) {
        self.db_commits.inc();
        self.db_writes_per_commit.observe(writes as f64);
    }

    /// A pool's connections right now.
    pub fn pool(&self, pool: &'static str, open: u32, idle: usize) {
        self.db_connections.get_or_create(&PoolLabels { pool, state: "open" }).set(i64::from(open));
        self.db_connections.get_or_create(&PoolLabels { pool, state: "idle" }).set(idle as i64);
    }

    /// A connection refused at `front`'s cap.
    pub fn connection_refused(&self, front: &'static str) {
        self.connections_refused.get_or_create(&FrontLabel { front }).inc();
    }

    /// An API key refused.
    pub fn auth_refused(&self) {
        self.auth_refused.inc();
    }

    /// A token consumed by an approved payment.
    pub fn consumed(&self, kind: crate::instruments::InstrumentKind) {
        self.tokens_consumed.get_or_create(&KindLabel { kind: kind.as_str().to_string() }).inc();
    }

    /// Everything, in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // (Writing into a String cannot fail.)
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_come_from_fixed_sets_whatever_the_client_sends() {
        assert_eq!(method_label("POST"), "POST");
        for odd in ["4242424242424242", "post", "PROPFIND", ""] {
            assert_eq!(method_label(odd), "other", "{odd}");
        }
        assert_eq!(mti_label("0200"), "0200");
        assert_eq!(mti_label("9999"), "other");
        assert_eq!(code_label("00"), "00");
        assert_eq!(code_label("none"), "none");
        assert_eq!(code_label("4111111111111111"), "other");
    }
}
