//! The conformance vectors: every case passes, through the in-process HSM and through `hsm-sim serve`
//! over TCP alike, and `tsp vectors run` reports and exits as docs/hsm-and-vectors.md "The vectors"
//! says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::path::PathBuf;
use std::sync::Arc;

use tsp::hsm::Hsm;

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("vectors")
}

#[tokio::test]
async fn every_vector_passes_in_process_and_over_tcp_with_the_same_results() {
    let local = Hsm::in_process(Arc::new(hsm_sim::Hsm::ephemeral().unwrap()));
    let report = tsp::vectors::run(&local, &[vectors_dir()]).await;
    let failures: Vec<&String> =
        report.lines.iter().filter(|l| l.starts_with("FAIL") || !l.starts_with("suite")).collect();
    assert!(
        failures.is_empty(),
        "{} failed:\n{}",
        report.failed,
        failures.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert_eq!(report.failed, 0);
    assert!(report.passed > 1000, "only {} cases ran", report.passed);
    assert_eq!(report.exit_code(), 0);

    // The same set through the simulator's TCP server.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(hsm_sim::server::serve(listener, Arc::new(hsm_sim::Hsm::ephemeral().unwrap())));
    let remote = Hsm::tcp(&format!("tcp://{addr}")).unwrap();
    let over_tcp = tsp::vectors::run(&remote, &[vectors_dir()]).await;
    assert_eq!(over_tcp.lines, report.lines);
    assert_eq!((over_tcp.passed, over_tcp.failed), (report.passed, report.failed));
}

#[test]
fn the_cli_reports_failures_and_exits_by_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let good = r#"{"suite":"t","source":"RFC 4231 §4.3","cases":[
        {"id":"ok","op":"hmac.sha256","in":{"key":"4a656665","data":"7768617420646f2079612077616e7420666f72206e6f7468696e673f"},
         "out":{"mac":"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"}}]}"#;
    std::fs::write(dir.path().join("good.json"), good).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tsp"))
            .arg("vectors")
            .arg("run")
            .args(args)
            .output()
            .unwrap();
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    let (code, out) = run(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out.lines().last(), Some("1 passed, 0 failed"));

    let bad = r#"{"suite":"b","source":"-","cases":[
        {"id":"wrong-mac","op":"hmac.sha256","in":{"key":"00","data":"00"},"out":{"mac":"00"}},
        {"id":"want-error","op":"hmac.sha256","in":{"key":"00","data":"00"},"out":{"error":"auth"}},
        {"id":"extra-key","op":"luhn.check","in":{"number":"79927398713"},"out":{"valid":true,"bogus":1}},
        {"id":"unknown","op":"nope.op","in":{},"out":{"x":1}},
        {"id":"right-error","op":"aes_kw.unwrap","in":{"kek":"000102030405060708090A0B0C0D0E0F","wrapped":"1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE4"},"out":{"error":"auth"}}]}"#;
    std::fs::write(dir.path().join("bad.json"), bad).unwrap();
    let (code, out) = run(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    for id in ["wrong-mac", "want-error", "extra-key", "unknown"] {
        assert!(out.lines().any(|l| l.starts_with("FAIL") && l.contains(id)), "{id} not reported: {out}");
    }
    assert!(out.contains("unknown op"));
    assert!(!out.contains("right-error"));
    assert_eq!(out.lines().last(), Some("2 passed, 4 failed"));

    std::fs::write(dir.path().join("broken.json"), "{ not json").unwrap();
    let (code, out) = run(&[dir.path().to_str().unwrap()]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("broken.json"));
    let (code, _) = run(&["/nonexistent/vectors"]);
    assert_eq!(code, Some(2));
}
