//! `tsp vectors run`: the conformance vector runner (format: docs/hsm-and-vectors.md
//! "Vector file format", suites: `vectors/README.md`).
//!
//! Each case names an op; [`ops`] maps it onto the same code the service calls — an HSM request
//! (in process or over TCP) or a codec function — never a copy. A case passes when the op produces
//! every key of `out` with an equal value (strings compare case-insensitively), or, for
//! `out: {"error": kind}`, fails with that kind. An unknown op fails the case.

mod ops;

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::hsm::Hsm;

/// Why an op produced no output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The operation failed with this error kind (`auth`, `format`, `key`, `range`, …).
    Kind(String),
    /// The runner does not know the op.
    UnknownOp(String),
}

/// The outcome of running some vector files.
#[derive(Debug, Default)]
pub struct Report {
    /// What to print, in order: failed cases, one summary line per suite, unreadable files.
    pub lines: Vec<String>,
    pub passed: usize,
    pub failed: usize,
    /// Some file could not be read or parsed.
    pub unreadable: bool,
}

impl Report {
    pub fn print(&self, w: &mut dyn Write) -> std::io::Result<()> {
        for l in &self.lines {
            writeln!(w, "{l}")?;
        }
        writeln!(w, "{} passed, {} failed", self.passed, self.failed)
    }

    /// 0 when none failed, 1 when a case failed, 2 when a file could not be read or parsed.
    pub fn exit_code(&self) -> i32 {
        if self.unreadable {
            2
        } else if self.failed > 0 {
            1
        } else {
            0
        }
    }
}

/// Every `*.json` file under `paths` (files as given, folders recursively), sorted.
fn collect(paths: &[PathBuf], report: &mut Report) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for p in paths {
        if p.is_dir() {
            let mut stack = vec![p.clone()];
            while let Some(d) = stack.pop() {
                match std::fs::read_dir(&d) {
                    Ok(entries) => {
                        for e in entries.flatten() {
                            let path = e.path();
                            if path.is_dir() {
                                stack.push(path);
                            } else if path.extension().is_some_and(|x| x == "json") {
                                out.push(path);
                            }
                        }
                    }
                    Err(e) => {
                        report.unreadable = true;
                        report.lines.push(format!("{}: cannot read: {e}", d.display()));
                    }
                }
            }
        } else if p.is_file() {
            out.push(p.clone());
        } else {
            report.unreadable = true;
            report.lines.push(format!("{}: no such file or folder", p.display()));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Runs every case of every vector file under `paths`.
pub async fn run(hsm: &Hsm, paths: &[PathBuf]) -> Report {
    let mut report = Report::default();
    for file in collect(paths, &mut report) {
        run_file(hsm, &file, &mut report).await;
    }
    report
}

async fn run_file(hsm: &Hsm, file: &Path, report: &mut Report) {
    let name = file.display();
    let doc: Value = match std::fs::read_to_string(file)
        .map_err(|e| e.to_string())
        .and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()))
    {
        Ok(v) => v,
        Err(e) => {
            report.unreadable = true;
            report.lines.push(format!("{name}: cannot read or parse: {e}"));
            return;
        }
    };
    let (Some(suite), Some(cases)) = (doc["suite"].as_str(), doc["cases"].as_array()) else {
        report.unreadable = true;
        report.lines.push(format!("{name}: not a vector file (needs \"suite\" and \"cases\")"));
        return;
    };
    let (mut passed, mut failed) = (0, 0);
    for (i, case) in cases.iter().enumerate() {
        let id = case["id"].as_str().map(str::to_string).unwrap_or_else(|| format!("#{i}"));
        let verdict = match (case["op"].as_str(), case["in"].as_object(), case["out"].as_object()) {
            (Some(op), Some(input), Some(out)) => judge(out, ops::run(hsm, op, input).await),
            _ => Err("case needs \"op\", \"in\" and \"out\"".to_string()),
        };
        match verdict {
            Ok(()) => passed += 1,
            Err(why) => {
                failed += 1;
                report.lines.push(format!("FAIL {name} {id}: {why}"));
            }
        }
    }
    report.lines.push(format!("suite {suite} ({name}): {passed} passed, {failed} failed"));
    report.passed += passed;
    report.failed += failed;
}

/// Whether what the op produced satisfies `out`.
fn judge(out: &Map<String, Value>, got: Result<Map<String, Value>, Failure>) -> Result<(), String> {
    match (out.get("error"), got) {
        (_, Err(Failure::UnknownOp(op))) => Err(format!("unknown op {op:?}")),
        (Some(want), Err(Failure::Kind(kind))) => {
            if want.as_str() == Some(kind.as_str()) {
                Ok(())
            } else {
                Err(format!("expected error {want}, got error {kind:?}"))
            }
        }
        (Some(want), Ok(produced)) => Err(format!("expected error {want}, got {}", Value::Object(produced))),
        (None, Err(Failure::Kind(kind))) => Err(format!("expected {}, got error {kind:?}", Value::Object(out.clone()))),
        (None, Ok(produced)) => {
            for (k, want) in out {
                match produced.get(k) {
                    None => return Err(format!("the op does not produce {k:?}")),
                    Some(have) if !same(want, have) => return Err(format!("{k}: expected {want}, got {have}")),
                    Some(_) => {}
                }
            }
            Ok(())
        }
    }
}

/// Equality with strings compared case-insensitively, objects key by key.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) => x.eq_ignore_ascii_case(y),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(v, w)| same(v, w)),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn judging() {
        assert!(judge(&obj(json!({"mac": "ab"})), Ok(obj(json!({"mac": "AB"})))).is_ok());
        assert!(judge(&obj(json!({"mac": "ab"})), Ok(obj(json!({"mac": "AC"})))).is_err());
        // `out` naming a key the op does not produce fails.
        assert!(judge(&obj(json!({"mac": "ab", "extra": 1})), Ok(obj(json!({"mac": "ab"})))).is_err());
        // Keys the op produces but `out` does not name are ignored.
        assert!(judge(&obj(json!({"mac": "ab"})), Ok(obj(json!({"mac": "ab", "len": 1})))).is_ok());
        assert!(judge(&obj(json!({"error": "auth"})), Err(Failure::Kind("auth".into()))).is_ok());
        assert!(judge(&obj(json!({"error": "auth"})), Err(Failure::Kind("format".into()))).is_err());
        assert!(judge(&obj(json!({"error": "auth"})), Ok(obj(json!({"pt": ""})))).is_err());
        assert!(judge(&obj(json!({"pt": ""})), Err(Failure::Kind("auth".into()))).is_err());
        assert!(judge(&obj(json!({"x": 1})), Err(Failure::UnknownOp("nope".into()))).is_err());
        assert!(judge(&obj(json!({"valid": true})), Ok(obj(json!({"valid": false})))).is_err());
    }
}
