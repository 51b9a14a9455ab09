//! Counting and reporting for `tsp load`.
//!
//! Owns what a run measured: per operation (`purchase card`, `cancel local`, `echo`, `tokenize`, …)
//! the requests sent, every response code received (DE39 over ISO 8583, the HTTP status over REST),
//! the wrong outcomes by reason and a latency histogram (microseconds from send to answer, three
//! significant digits, HdrHistogram). Connections count on their own [`Stats`]; the run merges them
//! into a [`Report`], printed as text or as one JSON object.

use std::collections::BTreeMap;
use std::io::Write;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

/// The longest latency the histogram tells apart (an hour, in microseconds); longer ones count as it.
const MAX_MICROS: u64 = 3_600_000_000;

/// Why an outcome counts as wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Wrong {
    /// A well-formed answer with another response code (or HTTP status) than the mode expects.
    Code,
    /// An answer whose MTI, DE41 or DE4 is not what the request calls for, or a REST answer without
    /// the fields it must have.
    Echo,
    /// An answer that does not decode.
    Undecodable,
    /// No answer within the request timeout.
    Timeout,
    /// The connection broke with the request outstanding (or the REST request failed).
    Connection,
    /// An answer that matches no request sent on its connection.
    Unmatched,
    /// A connection that could not be opened.
    Connect,
    /// A request the load tool could not build (a bug of the tool, not of the server).
    Build,
}

impl Wrong {
    pub fn as_str(self) -> &'static str {
        match self {
            Wrong::Code => "unexpected_code",
            Wrong::Echo => "mismatched_echo",
            Wrong::Undecodable => "undecodable",
            Wrong::Timeout => "timeout",
            Wrong::Connection => "connection",
            Wrong::Unmatched => "unmatched",
            Wrong::Connect => "connect",
            Wrong::Build => "build",
        }
    }
}

/// One operation's counts and latencies.
#[derive(Clone)]
pub struct OpStats {
    pub requests: u64,
    pub codes: BTreeMap<String, u64>,
    pub wrong: BTreeMap<Wrong, u64>,
    latency: Histogram<u64>,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats { requests: 0, codes: BTreeMap::new(), wrong: BTreeMap::new(), latency: histogram() }
    }
}

#[allow(clippy::expect_used)] // constant arguments, checked by every load test
fn histogram() -> Histogram<u64> {
    // Constant bounds that HdrHistogram accepts (low ≥ 1, high ≥ 2·low, 3 significant digits):
    // this cannot fail, and no input reaches it.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid constant histogram bounds")
}

impl OpStats {
    /// An answer came back after `micros`; `code` is its DE39 or HTTP status (`--` when absent).
    pub fn answered(&mut self, code: &str, micros: u64) {
        *self.codes.entry(code.to_string()).or_default() += 1;
        self.latency.saturating_record(micros.clamp(1, MAX_MICROS));
    }

    pub fn wrong(&mut self, why: Wrong) {
        *self.wrong.entry(why).or_default() += 1;
    }

    pub fn wrong_total(&self) -> u64 {
        self.wrong.values().sum()
    }

    /// Answers with `code`.
    pub fn code(&self, code: &str) -> u64 {
        self.codes.get(code).copied().unwrap_or(0)
    }

    /// The latency at `quantile` (0.5, 0.99, …), in milliseconds; 0 when nothing was answered.
    pub fn percentile_ms(&self, quantile: f64) -> f64 {
        if self.latency.is_empty() { 0.0 } else { self.latency.value_at_quantile(quantile) as f64 / 1000.0 }
    }

    pub fn max_ms(&self) -> f64 {
        if self.latency.is_empty() { 0.0 } else { self.latency.max() as f64 / 1000.0 }
    }

    pub fn mean_ms(&self) -> f64 {
        self.latency.mean() / 1000.0
    }

    pub fn add(&mut self, other: &OpStats) {
        self.requests += other.requests;
        for (c, n) in &other.codes {
            *self.codes.entry(c.clone()).or_default() += n;
        }
        for (w, n) in &other.wrong {
            *self.wrong.entry(*w).or_default() += n;
        }
        // Both histograms have the same bounds, so adding cannot overflow their range.
        let _ = self.latency.add(&other.latency);
    }

    fn json(&self) -> Value {
        json!({
            "requests": self.requests,
            "codes": self.codes,
            "wrong": self.wrong_total(),
            "wrong_by_reason": self.wrong.iter().map(|(w, n)| (w.as_str(), *n)).collect::<BTreeMap<_, _>>(),
            "latency_ms": {
                "p50": round3(self.percentile_ms(0.5)),
                "p99": round3(self.percentile_ms(0.99)),
                "p99.9": round3(self.percentile_ms(0.999)),
                "max": round3(self.max_ms()),
            },
        })
    }
}

/// The counts of one connection, or of a whole run: per operation, and wrong outcomes that belong
/// to no request (an unmatched answer, a connection that never opened).
#[derive(Clone, Default)]
pub struct Stats {
    pub ops: BTreeMap<&'static str, OpStats>,
    pub stray: BTreeMap<Wrong, u64>,
    /// Answers that came after their request had already been counted as timed out.
    pub late: u64,
}

impl Stats {
    pub fn op(&mut self, op: &'static str) -> &mut OpStats {
        self.ops.entry(op).or_default()
    }

    pub fn stray(&mut self, why: Wrong) {
        *self.stray.entry(why).or_default() += 1;
    }

    pub fn add(&mut self, other: &Stats) {
        for (name, s) in &other.ops {
            self.op(name).add(s);
        }
        for (w, n) in &other.stray {
            *self.stray.entry(*w).or_default() += n;
        }
        self.late += other.late;
    }

    /// Every operation together; stray wrong outcomes included.
    pub fn total(&self) -> OpStats {
        let mut t = OpStats::default();
        for s in self.ops.values() {
            t.add(s);
        }
        for (w, n) in &self.stray {
            *t.wrong.entry(*w).or_default() += n;
        }
        t
    }
}

/// What a run did, for printing.
pub struct Report {
    pub mode: &'static str,
    pub connections: usize,
    pub pipeline: usize,
    /// Preparing instruments and tokens over REST, before the timed part.
    pub setup_seconds: f64,
    /// The timed part: from the first request to the last answer.
    pub seconds: f64,
    pub stats: Stats,
    /// Cancels and reversals not sent because no approved payment was left to follow up.
    pub skipped: u64,
}

impl Report {
    pub fn wrong(&self) -> u64 {
        self.stats.total().wrong_total()
    }

    /// Answers `00` (or the REST modes' success status: `201` for `tokenize` and `register`, `200`
    /// for `detokenize`) per operation family (`purchase`, `cancel`, `reversal`, `echo`, `tokenize`,
    /// `register`, `detokenize`), whatever the instrument.
    pub fn approved(&self) -> BTreeMap<&'static str, u64> {
        let mut out = BTreeMap::new();
        for (name, s) in &self.stats.ops {
            let family = name.split(' ').next().unwrap_or(name);
            let ok = match *name {
                "tokenize" | "register" => s.code("201"),
                "detokenize" => s.code("200"),
                _ => s.code("00"),
            };
            *out.entry(family).or_default() += ok;
        }
        out
    }

    pub fn throughput(&self) -> f64 {
        let requests = self.stats.total().requests as f64;
        if self.seconds > 0.0 { requests / self.seconds } else { 0.0 }
    }

    pub fn json(&self) -> Value {
        let t = self.stats.total();
        json!({
            "mode": self.mode,
            "connections": self.connections,
            "pipeline": self.pipeline,
            "requests": t.requests,
            "seconds": round3(self.seconds),
            "setup_seconds": round3(self.setup_seconds),
            "throughput": round3(self.throughput()),
            "latency_ms": {
                "p50": round3(t.percentile_ms(0.5)),
                "p99": round3(t.percentile_ms(0.99)),
                "p99.9": round3(t.percentile_ms(0.999)),
                "max": round3(t.max_ms()),
                "mean": round3(t.mean_ms()),
            },
            "codes": t.codes,
            "approved": self.approved(),
            "wrong": t.wrong_total(),
            "wrong_by_reason": t.wrong.iter().map(|(w, n)| (w.as_str(), *n)).collect::<BTreeMap<_, _>>(),
            "late_answers": self.stats.late,
            "skipped": self.skipped,
            "ops": self.stats.ops.iter().map(|(k, v)| (*k, v.json())).collect::<BTreeMap<_, _>>(),
        })
    }

    pub fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let t = self.stats.total();
        writeln!(
            out,
            "tsp load: mode {}, {} connections, pipeline {}, setup {:.1} s",
            self.mode, self.connections, self.pipeline, self.setup_seconds
        )?;
        writeln!(out, "requests   {} in {:.3} s = {:.1}/s", t.requests, self.seconds, self.throughput())?;
        writeln!(
            out,
            "latency    p50 {:.3} ms   p99 {:.3} ms   p99.9 {:.3} ms   max {:.3} ms",
            t.percentile_ms(0.5),
            t.percentile_ms(0.99),
            t.percentile_ms(0.999),
            t.max_ms()
        )?;
        writeln!(out, "codes      {}", codes_text(&t.codes))?;
        let reasons: Vec<String> = t.wrong.iter().map(|(w, n)| format!("{} {n}", w.as_str())).collect();
        if reasons.is_empty() {
            writeln!(out, "wrong      0")?;
        } else {
            writeln!(out, "wrong      {} ({})", t.wrong_total(), reasons.join(", "))?;
        }
        if self.stats.late > 0 || self.skipped > 0 {
            writeln!(out, "late answers {}, skipped follow-ups {}", self.stats.late, self.skipped)?;
        }
        if self.stats.ops.len() > 1 {
            writeln!(
                out,
                "{:<16} {:>9} {:>9} {:>9} {:>9}  codes",
                "operation", "requests", "p50 ms", "p99 ms", "wrong"
            )?;
            for (name, s) in &self.stats.ops {
                writeln!(
                    out,
                    "{:<16} {:>9} {:>9.3} {:>9.3} {:>9}  {}",
                    name,
                    s.requests,
                    s.percentile_ms(0.5),
                    s.percentile_ms(0.99),
                    s.wrong_total(),
                    codes_text(&s.codes)
                )?;
            }
        }
        Ok(())
    }
}

fn codes_text(codes: &BTreeMap<String, u64>) -> String {
    if codes.is_empty() {
        return "-".into();
    }
    codes.iter().map(|(c, n)| format!("{c}: {n}")).collect::<Vec<_>>().join(", ")
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_merge_and_totals() {
        let mut a = Stats::default();
        for i in 1..=1000u64 {
            a.op("echo").answered("00", i * 1000);
        }
        a.op("echo").requests = 1000;
        let mut b = Stats::default();
        b.op("echo").requests = 2;
        b.op("echo").wrong(Wrong::Timeout);
        b.stray(Wrong::Unmatched);
        let mut run = Stats::default();
        run.add(&a);
        run.add(&b);
        let t = run.total();
        assert_eq!((t.requests, t.code("00"), t.wrong_total()), (1002, 1000, 2));
        assert!((t.percentile_ms(0.5) - 500.0).abs() < 1.0, "{}", t.percentile_ms(0.5));
        assert!((t.percentile_ms(0.99) - 990.0).abs() < 1.0);
        let r = Report {
            mode: "echo",
            connections: 2,
            pipeline: 4,
            setup_seconds: 0.0,
            seconds: 2.0,
            stats: run,
            skipped: 0,
        };
        let j = r.json();
        assert_eq!(j["wrong"], 2);
        assert_eq!(j["wrong_by_reason"]["timeout"], 1);
        assert_eq!(j["approved"]["echo"], 1000);
        assert_eq!(j["throughput"], 501.0);
        let mut text = Vec::new();
        r.write_text(&mut text).unwrap();
        assert!(String::from_utf8(text).unwrap().contains("codes      00: 1000"));
    }
}
