//! The payShield front against independent implementations: starts `hsm-sim serve --protocol payshield`
//! and runs `tests/pythales_diff.py`, which speaks to it and to pythales (in process) and checks the
//! answers against pythales, psec and hashlib. Needs python3 with pythales, pycryptodome and psec
//! (`scripts/test` installs them); a missing interpreter or package fails the test, never skips it.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The clear ZMK both HSMs receive keys under (odd parity).
const ZMK: &str = "0123456789ABCDEFFEDCBA9876543210";

#[test]
fn payshield_front_agrees_with_pythales_and_psec() {
    let bin = env!("CARGO_BIN_EXE_hsm-sim");
    let formed = Command::new(bin).args(["form-key", "--key-type", "000", ZMK]).output().unwrap();
    assert!(formed.status.success(), "{}", String::from_utf8_lossy(&formed.stderr));
    let formed = String::from_utf8(formed.stdout).unwrap();
    let (zmk_lmk, _kcv) = formed.trim().split_once(' ').unwrap();

    let mut child = Command::new(bin)
        .args(["serve", "--protocol", "payshield", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = Server(child);
    let addr = line.split("listening on ").nth(1).unwrap().split(' ').next().unwrap().to_string();

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/pythales_diff.py");
    let out = Command::new("python3")
        .args([script, &addr, ZMK, zmk_lmk])
        .output()
        .expect("python3 is needed for this test (scripts/test installs pythales, pycryptodome, psec)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "differential test failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}
