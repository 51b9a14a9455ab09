//! `hsm-sim init` and `hsm-sim serve` on a sealed key store, the real binary: the ceremony writes
//! M-of-N shares and a key store with no master key in clear; `serve` refuses to start without
//! shares or with fewer than M, serves with M, and any M shares open the same keys.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn hsm_sim() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hsm-sim"));
    c.env_remove("HSM_SIM_UNSEAL_SHARES");
    c
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `serve` on `keystore` with the share files given: the server and its address, or the exit
/// status and stderr of a start that failed.
fn serve(keystore: &Path, shares: &[&Path]) -> Result<(Server, String), String> {
    let mut cmd = hsm_sim();
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--keystore", keystore.to_str().unwrap()]);
    for s in shares {
        cmd.args(["--unseal-share-file", s.to_str().unwrap()]);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    if line.contains("listening on") {
        return Ok((Server(child), line.trim().rsplit(' ').next().unwrap().to_string()));
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    assert!(!status.success(), "a start that did not listen succeeded: {err}");
    Err(err)
}

fn call(addr: &str, req: serde_json::Value) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let body = req.to_string();
    s.write_all(&(body.len() as u32).to_be_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut buf = vec![0u8; u32::from_be_bytes(len) as usize];
    s.read_exact(&mut buf).unwrap();
    serde_json::from_slice(&buf).unwrap()
}

#[test]
fn a_sealed_key_store_serves_only_with_its_threshold_of_shares() {
    let dir = tempfile::tempdir().unwrap();
    let keystore = dir.path().join("hsm").join("keystore.json");
    let shares = dir.path().join("shares");
    let out = hsm_sim()
        .args(["init", "--keystore", keystore.to_str().unwrap(), "--custodians", "3", "--threshold", "2"])
        .args(["--share-dir", shares.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let share = |n: u32| shares.join(format!("custodian-{n}.share"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for n in 1..=3 {
            assert_eq!(std::fs::metadata(share(n)).unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    // The key store holds the master key only sealed.
    let file: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&keystore).unwrap()).unwrap();
    assert!(file.get("seal").is_some_and(|s| !s.is_null()), "{file}");
    assert!(file.get("lmk").is_none_or(serde_json::Value::is_null), "a master key in clear: {file}");
    // A second ceremony over it is refused.
    let again = hsm_sim()
        .args(["init", "--keystore", keystore.to_str().unwrap(), "--custodians", "3", "--threshold", "2"])
        .output()
        .unwrap();
    assert!(!again.status.success());

    // No shares, or one of two: it does not start.
    let err = serve(&keystore, &[]).err().expect("started without shares");
    assert!(err.contains("sealed"), "{err}");
    let err = serve(&keystore, &[&share(1)]).err().expect("started with one share of two");
    assert!(err.contains("stays sealed"), "{err}");

    // Two shares: it serves; a key made now is there again when two other shares open it.
    let (server, addr) = serve(&keystore, &[&share(1), &share(2)]).unwrap();
    let made = call(&addr, serde_json::json!({"op": "generate_key", "label": "t", "usage": "hmac"}));
    assert!(made.get("ok").is_some(), "{made}");
    let mac = |addr: &str| {
        let r = call(addr, serde_json::json!({"op": "hmac", "key": {"kind": "stored", "label": "t"}, "data": "00"}));
        r["ok"]["mac"].as_str().unwrap_or_else(|| panic!("{r}")).to_string()
    };
    let first = mac(&addr);
    drop(server);
    let (_server, addr) = serve(&keystore, &[&share(3), &share(1)]).unwrap();
    assert_eq!(mac(&addr), first, "other shares open the same master key");
}
