//! PCI DSS: no registered PAN in clear in the database files or in any log line the server wrote.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

mod common;

use common::{TestServer, card, files_under, find};
use serde_json::json;

#[tokio::test]
async fn no_clear_pan_in_database_or_logs() {
    let mut s = TestServer::start().await;
    let app = s.keys.app.clone();
    let mut term = common::iso::Terminal::connect(&s.iso).await;
    let mut pans: Vec<String> = Vec::new();
    // Serials with no runs of zeros: the database stores long runs of digits that are not PANs (a
    // stored 0210 holds token ‖ DE3 `000000` ‖ DE4 `000000001000` ‖ …, all ASCII), so a PAN whose
    // hidden digits were "007" and seven zeros turned up there whenever a token happened to end in
    // 007 — about one run in fifty. The scan must find PANs, not coincidences.
    for i in 0..10 {
        pans.push(card("411111", 731_652_947 + i * 7_919_011, 16));
        pans.push(card("555555", 382_915_463 + i * 10_472_903, 16));
    }
    pans.push(card("424242", 987_654_321_586, 19));
    pans.push(card("510510", 428_571, 13));
    for pan in &pans {
        let (st, ins) = s.post(&app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
        assert_eq!(st, 201, "{ins}");
        // Exercise every path that handles the PAN: duplicate registration, tokens, detokenize,
        // errors caused by a PAN of the wrong type, a PAN typed into a URL.
        let (st, _) = s.post(&app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
        assert_eq!(st, 200);
        let (st, tok) = s.post(&app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
        assert_eq!(st, 201);
        let (st, d) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": tok["token"] })).await;
        assert_eq!((st, d["pan"].as_str()), (200, Some(pan.as_str())));
        let as_number: u64 = pan[..pan.len().min(19)].parse().unwrap_or(0);
        let (st, _) =
            s.post(&app, "/v1/instruments", json!({ "type": "card", "pan": as_number, "expiry": "3106" })).await;
        assert_eq!(st, 422);
        let (st, _) = s.post(&s.keys.van, "/v1/detokenize", json!({ "token": pan })).await;
        assert_eq!(st, 404);
        let (st, _) = s.get(&app, &format!("/v1/instruments/{pan}")).await;
        assert_eq!(st, 404);
        let (st, _) = s.get(&app, &format!("/v1/{pan}")).await;
        assert_eq!(st, 404);
        // A payment over ISO 8583: the issuer-bound message carries the PAN; nothing else may.
        let (st, tok) = s.post(&app, "/v1/tokens", json!({ "instrument_id": ins["id"] })).await;
        assert_eq!(st, 201);
        let ans = term.pay(tok["token"].as_str().unwrap(), 1000).await;
        assert_eq!(ans.response_code(), Some("00"));
        assert_ne!(ans.pan(), Some(pan.as_str()));
    }
    let (_, list) = s.get(&app, "/v1/instruments").await;
    for pan in &pans {
        assert!(!list.to_string().contains(pan.as_str()));
    }

    // While running (data in the WAL) and after a clean stop (checkpointed into the main file).
    let (data_dir, stdout, stderr) = (s.data_dir(), s.stdout_path(), s.stderr_path());
    let database_url = s.database_url.clone();
    let dump_path = s.dir.path().join("pg_dump.sql");
    let scan = |when: &str| {
        let mut files = files_under(&data_dir);
        files.push(stdout.clone());
        files.push(stderr.clone());
        // On PostgreSQL the database is not in the data directory: scan a full dump of it.
        if let Some(url) = &database_url {
            let out = std::process::Command::new("pg_dump").arg(url).output().expect("pg_dump");
            assert!(out.status.success() && out.stdout.len() > 10_000, "pg_dump of the test database");
            std::fs::write(&dump_path, &out.stdout).unwrap();
            files.push(dump_path.clone());
        }
        let mut bytes_seen = 0;
        for f in &files {
            let bytes = std::fs::read(f).unwrap_or_default();
            bytes_seen += bytes.len();
            for pan in &pans {
                assert!(
                    find(&bytes, pan.as_bytes()).is_none(),
                    "{when}: clear PAN {}…{} found in {}",
                    &pan[..6],
                    &pan[pan.len() - 4..],
                    f.display()
                );
                assert!(find(&bytes, hex::encode(pan).as_bytes()).is_none(), "{when}: hex PAN in {}", f.display());
                // Nor the digits a mask hides next to either visible part (a PAN masked only at one
                // end, or split across fields): first six + middle, middle + last four.
                let (head, tail) = (&pan[..pan.len() - 4], &pan[6..]);
                assert!(
                    find(&bytes, head.as_bytes()).is_none(),
                    "{when}: PAN digits beyond the first six in {}",
                    f.display()
                );
                // Only where the run is long enough not to occur by chance: a 13-digit PAN's tail is
                // 7 digits, and the WAL holds some 100,000 windows of 7 ASCII digits (tokens, stored
                // ISO messages, hex ids), so a given 7-digit string is in it about one run in a
                // hundred. (Its full number and first nine digits are still checked.)
                if tail.len() >= 9
                    && let Some(at) = find(&bytes, tail.as_bytes())
                {
                    let before = String::from_utf8_lossy(&bytes[at.saturating_sub(120)..at]).to_string();
                    let after =
                        String::from_utf8_lossy(&bytes[at + tail.len()..(at + tail.len() + 60).min(bytes.len())])
                            .to_string();
                    panic!(
                        "{when}: PAN digits before the last four (PAN #{i} of {n}, {} digits) in {} at byte {at}: \
                         {before:?} [masked match] {after:?}",
                        pan.len(),
                        f.display(),
                        i = pans.iter().position(|p| p == pan).unwrap_or(0),
                        n = pans.len(),
                    );
                }
                // The bare middle only where it is long enough not to occur by chance (a 6-digit
                // middle does: in the fractional seconds of log timestamps).
                let middle = &pan[6..pan.len() - 4];
                if middle.len() >= 9 {
                    assert!(find(&bytes, middle.as_bytes()).is_none(), "{when}: PAN middle digits in {}", f.display());
                }
            }
        }
        bytes_seen
    };
    let seen = scan("running");
    assert!(seen > 10_000, "the scan must have read the database and logs ({seen} bytes)");
    let log = std::fs::read_to_string(s.stderr_path()).unwrap();
    assert!(log.lines().count() > 100, "trace logging must have produced lines");
    s.stop();
    scan("stopped");
    if s.database_url.is_none() {
        assert!(files_under(&s.data_dir()).iter().any(|f| f.ends_with("tsp.db")));
    }
}

/// The data directory is its owner's alone: the directory `0700`, the database, its WAL and shared
/// memory and the development key store `0600`, also when an older version left them wider.
#[cfg(unix)]
#[tokio::test]
async fn data_files_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let mut s = TestServer::start().await;
    let pan = card("411111", 592_653_589, 16);
    let (st, _) = s.post(&s.keys.app, "/v1/instruments", json!({ "type": "card", "pan": pan, "expiry": "3106" })).await;
    assert_eq!(st, 201);
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = s.data_dir();
    let check = |dir: &std::path::Path| {
        assert_eq!(mode(dir), 0o700, "{}", dir.display());
        let files = files_under(dir);
        assert!(files.iter().any(|f| f.ends_with("hsm-keystore.json")));
        if !common::on_postgres() {
            for name in ["tsp.db", "tsp.db-wal", "tsp.db-shm"] {
                assert!(files.iter().any(|f| f.ends_with(name)), "{name} in {files:?}");
            }
        }
        for f in files {
            assert_eq!(mode(&f), 0o600, "{}", f.display());
        }
    };
    check(&dir);
    // Files an older version left readable to others are narrowed at the next start.
    s.kill();
    for f in files_under(&dir) {
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let s = s.restart().await;
    let (st, _) = s.get(&s.keys.app, "/v1/instruments").await;
    assert_eq!(st, 200);
    check(&s.data_dir());
}
