//! The audit trail: who detokenized, changed a key, an instrument or the platform's setup, and which
//! API keys were refused — one append-only row each, hash-chained.
//!
//! Row *n*'s hash is SHA-256 over row *n−1*'s hash and row *n*'s own fields, each length-prefixed so
//! that no two different rows encode alike; the first row chains to 64 zeros. Changing a row breaks
//! its own hash; removing or inserting one breaks the next row's link; so [`verify`] walking the rows
//! in order names the first row that was touched. (Someone who can rewrite the whole table can
//! recompute the chain from the first changed row on: export the trail regularly, or its head hash, to
//! somewhere they cannot write — `tsp audit export` prints it.)
//!
//! Rows never hold a PAN or a secret: subjects are ids, masked token numbers and key ids.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::{AuditFields, AuditRow, Store};

/// What the first row chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One event to record.
#[derive(Debug, Clone)]
pub struct Event {
    /// Who: a requestor id, `system`, `cli`, or `unknown` for a refused key.
    pub actor: String,
    /// What, e.g. `detokenize`, `instrument.suspend`, `key.create`, `auth.refused`.
    pub action: &'static str,
    /// What it was done to: an instrument or requestor id, a masked token, a key label.
    pub subject: Option<String>,
    /// `ok`, or the error code it ended with.
    pub outcome: String,
    /// Anything else worth keeping (never a PAN or a secret).
    pub detail: Value,
}

impl Event {
    pub fn new(actor: impl Into<String>, action: &'static str, subject: Option<String>) -> Event {
        Event { actor: actor.into(), action, subject, outcome: "ok".into(), detail: json!({}) }
    }

    pub fn outcome(mut self, outcome: impl Into<String>) -> Event {
        self.outcome = outcome.into();
        self
    }

    pub fn detail(mut self, detail: Value) -> Event {
        self.detail = detail;
        self
    }
}

/// The chain hash of row `seq` with fields `f` after a row whose hash is `prev` (hex).
pub fn chain_hash(prev: &str, seq: i64, f: &AuditFields<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(prev.as_bytes());
    field(seq.to_string().as_bytes());
    field(f.at.to_string().as_bytes());
    field(f.actor.as_bytes());
    field(f.action.as_bytes());
    match f.subject {
        // (A marker byte keeps "no subject" apart from an empty one.)
        Some(s) => field(&[[1u8].as_slice(), s.as_bytes()].concat()),
        None => field(&[0u8]),
    }
    field(f.outcome.as_bytes());
    field(f.detail.as_bytes());
    hex::encode(h.finalize())
}

fn row_hash(prev: &str, r: &AuditRow) -> String {
    chain_hash(prev, r.seq, &r.fields())
}

/// Appends `event` to the trail at `now`; returns its sequence number.
pub async fn record(store: &Store, event: &Event, now: i64) -> crate::Result<i64> {
    let detail = event.detail.to_string();
    let fields = AuditFields {
        at: now,
        actor: &event.actor,
        action: event.action,
        subject: event.subject.as_deref(),
        outcome: &event.outcome,
        detail: &detail,
    };
    let hash = |prev: &str, seq: i64| chain_hash(prev, seq, &fields);
    Ok(store.append_audit(&fields, GENESIS, &hash).await?)
}

/// Records `event` and logs (without failing the caller) when it cannot: for events whose recording
/// must not change the answer, such as a refused API key.
pub async fn record_or_log(store: &Store, event: &Event, now: i64) {
    if let Err(e) = record(store, event, now).await {
        tracing::error!(action = event.action, error = %e, "audit record failed");
    }
}

/// The result of walking the trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every row links to the one before and matches its hash; `head` is the last hash.
    Intact { rows: u64, head: String },
    /// The first row that does not hold, and why.
    Broken { seq: i64, reason: String },
}

/// Walks the whole trail in order.
pub async fn verify(store: &Store) -> crate::Result<Verdict> {
    let mut checker = Checker::default();
    let mut after = 0;
    loop {
        let page = store.audit_rows(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            if let Err(v) = checker.check(r) {
                return Ok(v);
            }
        }
    }
    Ok(Verdict::Intact { rows: checker.rows, head: checker.prev.unwrap_or_else(|| GENESIS.to_string()) })
}

/// Checks rows one at a time, in order.
#[derive(Default)]
struct Checker {
    rows: u64,
    prev: Option<String>,
    expected_seq: i64,
}

impl Checker {
    fn check(&mut self, r: &AuditRow) -> Result<(), Verdict> {
        let broken = |reason: String| Err(Verdict::Broken { seq: r.seq, reason });
        let want_seq = self.expected_seq.max(0) + 1;
        if r.seq != want_seq {
            return broken(format!("row {want_seq} is missing (the next row is {})", r.seq));
        }
        let prev = self.prev.clone().unwrap_or_else(|| GENESIS.to_string());
        if r.prev_hash != prev {
            return broken("its link to the row before does not match that row's hash".into());
        }
        if row_hash(&prev, r) != r.hash {
            return broken("its contents do not match its hash (the row was changed)".into());
        }
        self.prev = Some(r.hash.clone());
        self.expected_seq = r.seq;
        self.rows += 1;
        Ok(())
    }
}

/// Writes every row as one JSON object per line, oldest first; returns how many.
pub async fn export(store: &Store, out: &mut dyn std::io::Write) -> crate::Result<u64> {
    let mut after = 0;
    let mut n = 0;
    loop {
        let page = store.audit_rows(after, 10_000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        for r in &page {
            let detail: Value = serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail.clone()));
            let line = json!({
                "seq": r.seq,
                "at": crate::clock::rfc3339(r.at),
                "actor": r.actor,
                "action": r.action,
                "subject": r.subject,
                "outcome": r.outcome,
                "detail": detail,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            });
            writeln!(out, "{line}").map_err(|e| crate::Error::invalid("export_failed", e.to_string()))?;
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &str, detail: &str) -> AuditRow {
        let mut r = AuditRow {
            seq,
            at: 1_700_000_000_000 + seq,
            actor: "req_1".into(),
            action: "detokenize".into(),
            subject: Some("461000******1234".into()),
            outcome: "ok".into(),
            detail: detail.into(),
            prev_hash: prev.into(),
            hash: String::new(),
        };
        r.hash = row_hash(prev, &r);
        r
    }

    fn chain(n: i64) -> Vec<AuditRow> {
        let mut out: Vec<AuditRow> = Vec::new();
        for seq in 1..=n {
            let prev = out.last().map_or(GENESIS.to_string(), |r| r.hash.clone());
            out.push(row(seq, &prev, "{}"));
        }
        out
    }

    fn walk(rows: &[AuditRow]) -> Verdict {
        let mut c = Checker::default();
        for r in rows {
            if let Err(v) = c.check(r) {
                return v;
            }
        }
        Verdict::Intact { rows: c.rows, head: c.prev.unwrap_or_else(|| GENESIS.into()) }
    }

    #[test]
    fn the_hash_is_sha256_over_length_prefixed_fields() {
        // Computed independently: python3 -c "import hashlib; f=lambda b: len(b).to_bytes(8,'big')+b;
        // print(hashlib.sha256(b''.join(map(f,[b'0'*64,b'1',b'5',b'cli',b'key.create',b'\x01dek',b'ok',b'{}']))).hexdigest())"
        let f =
            |subject| AuditFields { at: 5, actor: "cli", action: "key.create", subject, outcome: "ok", detail: "{}" };
        let h = chain_hash(GENESIS, 1, &f(Some("dek")));
        assert_eq!(h, "cc641cbdb988c4aad6190af71fdd7f600d09d7e71654c95ef86696cd015e17a1");
        assert_ne!(h, chain_hash(GENESIS, 1, &f(None)));
        assert_ne!(h, chain_hash(GENESIS, 1, &f(Some(""))));
    }

    #[test]
    fn an_untouched_chain_is_intact() {
        let rows = chain(5);
        assert_eq!(walk(&rows), Verdict::Intact { rows: 5, head: rows[4].hash.clone() });
    }

    #[test]
    fn a_changed_removed_or_inserted_row_is_named() {
        let mut changed = chain(5);
        changed[2].detail = r#"{"x":1}"#.into();
        assert!(matches!(walk(&changed), Verdict::Broken { seq: 3, .. }));

        let mut rehashed = chain(5);
        rehashed[2].detail = r#"{"x":1}"#.into();
        rehashed[2].hash = row_hash(&rehashed[1].hash.clone(), &rehashed[2]);
        assert!(matches!(walk(&rehashed), Verdict::Broken { seq: 4, .. }), "the next row's link breaks");

        let mut removed = chain(5);
        removed.remove(3);
        assert!(matches!(walk(&removed), Verdict::Broken { seq: 5, .. }));

        let mut renumbered = chain(5);
        renumbered.remove(0);
        assert!(matches!(walk(&renumbered), Verdict::Broken { seq: 2, .. }));
    }
}
