//! `tsp demo` tells the card story end to end and shows no clear PAN.

#[test]
fn the_demo_runs_the_story_and_masks_every_pan() {
    let out =
        std::process::Command::new(env!("CARGO_BIN_EXE_tsp")).arg("demo").env("RUST_LOG", "info").output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for want in [
        "ARQC verified, tag 91 (ARPC) in DE55: true",
        "the same token again: 78",
        "3. A barcode payment of 8,900 KRW with a Nuri card token\n   0210: 00 approved",
        "0210: 51 insufficient funds",
        "0210: 91 issuer unavailable",
        "0420 advices it received: 1",
        "0410: 00 approved",
        "Hanbit's open-to-buy used after the reversal reached it: 0 KRW",
        "issuer open-to-buy used: 8900 KRW",
        "== done",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    for pan in ["4111111111111111", "5555555555554444"] {
        assert!(!stdout.contains(pan) && !stderr.contains(pan), "clear PAN in the demo's output");
    }
}
