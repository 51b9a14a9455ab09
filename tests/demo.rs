//! `tsp demo` tells the whole story end to end (cards, cancels around a settlement, a gift certificate,
//! a local-currency wallet, final balances) and shows no clear PAN.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code: a failure is a panic

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
        "cancel 2,000 (same business day): 00 approved — a void",
        "cancel 10,001 (more than is left): 64 more than is left to cancel",
        "cancel the remaining 10,000: 00 approved — a refund",
        "token 990001… from the platform's own range",
        "pay 20,000: 00 approved; balance principal 30000 KRW, refundable 0",
        "pay 40,000: 51 insufficient funds",
        "cancel the other 15,000: 00 approved; balance principal 50000 KRW, refundable 0",
        "pay 32,000: 00 approved; balance principal 18000 KRW, refundable 18000",
        "charged 100,000: principal +100000, bonus +10000",
        "(not in the region): 57 not permitted here",
        "pay 30,000 at GN-CAFE-0001: 00 approved (principal 20000 + bonus 10000); principal 80000 + bonus 0 KRW",
        "cancel 12,000: 00 approved (principal 12000 + bonus 0); principal 92000 + bonus 0 KRW",
        "cancel the other 18,000: 00 approved (principal 8000 + bonus 10000); principal 100000 + bonus 10000 KRW",
        "the terminal reverses it (0400): 00 approved (principal 0 + bonus 7000); principal 100000 + bonus 10000 KRW",
        "pay 25,000: 00 approved (principal 15000 + bonus 10000)",
        "principal 85000 + bonus 0 KRW, refundable 85000",
        "== done",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    for pan in ["4111111111111111", "5555555555554444"] {
        assert!(!stdout.contains(pan) && !stderr.contains(pan), "clear PAN in the demo's output");
    }
}

#[test]
fn the_demo_speaks_bcd_with_macs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tsp"))
        .args(["demo", "--dialect", "bcd", "--mac"])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for want in [
        "(bcd dialect, every message MACed under its terminal's TAK)",
        "ARQC verified, tag 91 (ARPC) in DE55: true",
        "0410: 00 approved",
        "pay 30,000 at GN-CAFE-0001: 00 approved (principal 20000 + bonus 10000); principal 80000 + bonus 0 KRW",
        "== done",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    assert!(!stdout.contains(": 63 "), "no security violation:\n{stdout}");
}
