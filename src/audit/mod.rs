//! The audit trail: who detokenized, changed a key, an instrument or the platform's setup, and which
//! API keys were refused — one append-only row each, hash-chained.
//!
//! **Chains.** Each process that writes rows (a `tsp serve` node, a CLI command) writes its own
//! chain, named by a time-ordered id: row *n* of a chain (its `link`) hashes row *n−1*'s hash and
//! its own fields, each length-prefixed so that no two different rows encode alike (see
//! [`chain_hash`]). A process's appends are batched ([`record`] hands the event to the store's
//! appender, which writes whatever has queued up as one multi-row insert and answers each caller once
//! that insert is durable), so no lock is held across a commit and nodes never wait for each other.
//! Chains are tied together: a chain's first row (`audit.chain`) forks from the trail's last row at
//! the time (its `prev_hash` is that row's hash; its detail names the row's `seq`), and about once a
//! second a busy process appends an `audit.anchor` row naming the last row of every other chain that
//! moved since (`chain`, `link`, `hash`). [`verify`] walks all rows in `seq` order and checks every
//! chain link by link, every fork and every anchor: a changed row breaks its own hash, a removed or
//! reordered one its chain's numbering or the next row's link, and a row another chain named is
//! missed there. Rows written before chains were per process form the legacy chain (`chain` empty,
//! numbered by `seq`, the first row chained to 64 zeros).
//!
//! What is not covered: rows after the last anchor or fork that names them (the tail of each chain,
//! at most about a second of a live node's rows, or a stopped node's rows until another process
//! starts) can be removed without a trace, as the tail of any hash chain can; and someone who can
//! rewrite the whole table can recompute every chain. Export the trail regularly, or its head hash,
//! to somewhere they cannot write — `tsp audit export` prints it.
//!
//! Rows never hold a PAN or a secret: subjects are ids, masked token numbers and key ids.

use std::collections::{HashMap, HashSet};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::{AuditFields, AuditPass, AuditRow, Store};

/// What the first row of the trail chains to.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The action of a chain's first row.
pub const CHAIN_START: &str = "audit.chain";
/// The action of a row that names the last rows of other chains.
pub const ANCHOR: &str = "audit.anchor";

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

/// The chain hash of the row at `link` of `chain` with fields `f`, after a row whose hash is `prev`
/// (hex). A legacy row (`chain` empty) hashes its `seq` as its link and no chain id.
pub fn chain_hash(prev: &str, link: i64, chain: &str, f: &AuditFields<'_>) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(prev.as_bytes());
    field(link.to_string().as_bytes());
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
    if !chain.is_empty() {
        field(chain.as_bytes());
    }
    hex::encode(h.finalize())
}

fn row_hash(prev: &str, r: &AuditRow) -> String {
    chain_hash(prev, r.position(), &r.chain, &r.fields())
}

/// The detail of a chain's first row: the `seq` of the row it forks from (0: none, the trail was
/// empty and it chains to [`GENESIS`]).
pub fn start_detail(fork_seq: i64) -> String {
    json!({ "fork_seq": fork_seq }).to_string()
}

/// The detail of an anchor row: the last rows of other chains.
pub fn anchor_detail(heads: &[crate::store::AuditHead]) -> String {
    let heads: Vec<Value> = heads.iter().map(|h| json!({ "chain": h.chain, "link": h.link, "hash": h.hash })).collect();
    json!({ "heads": heads }).to_string()
}

/// Appends `event` to this process's chain at `now` and returns its sequence number once the row is
/// durable. Concurrent calls share one write (see the module's text).
pub async fn record(store: &Store, event: &Event, now: i64) -> crate::Result<i64> {
    let draft = crate::store::AuditDraft {
        at: now,
        actor: event.actor.clone(),
        action: event.action.to_string(),
        subject: event.subject.clone(),
        outcome: event.outcome.clone(),
        detail: event.detail.to_string(),
    };
    Ok(store.append_audit(draft).await?)
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
    /// Every row holds in its chain, and every row a fork or an anchor names is there with the hash
    /// it names; `head` is the hash of the last row (by `seq`).
    Intact { rows: u64, chains: usize, head: String },
    /// The first row (by `seq`) that does not hold, and why.
    Broken { seq: i64, reason: String },
}

/// Walks the whole trail in order, in one snapshot of the database.
pub async fn verify(store: &Store) -> crate::Result<Verdict> {
    let mut checker = Checker::default();
    let mut broken = None;
    store
        .audit_scan(true, &mut |pass, r| match pass {
            AuditPass::Links => {
                checker.note_links(&r);
                true
            }
            AuditPass::Rows => match checker.check(&r) {
                Ok(()) => true,
                Err(v) => {
                    broken = Some(v);
                    false
                }
            },
        })
        .await?;
    Ok(broken.unwrap_or_else(|| checker.verdict()))
}

/// The fork a chain's first row names.
fn fork_seq(r: &AuditRow) -> Option<i64> {
    serde_json::from_str::<Value>(&r.detail).ok()?.get("fork_seq")?.as_i64()
}

/// The rows an anchor row names.
fn heads(r: &AuditRow) -> Vec<(String, i64, String)> {
    let Ok(v) = serde_json::from_str::<Value>(&r.detail) else { return Vec::new() };
    let Some(list) = v.get("heads").and_then(Value::as_array) else { return Vec::new() };
    list.iter()
        .filter_map(|h| {
            Some((
                h.get("chain")?.as_str()?.to_string(),
                h.get("link")?.as_i64()?,
                h.get("hash")?.as_str()?.to_string(),
            ))
        })
        .collect()
}

fn chain_name(chain: &str) -> &str {
    if chain.is_empty() { "(legacy)" } else { chain }
}

/// How many of each chain's last hashes the walk keeps for the anchors to compare with. An anchor
/// names a row its node read a moment before writing the anchor, so a few rows back from where the
/// walk is in that chain; a row named further back than this is checked for being there (a removed
/// tail is missing) but its hash is not compared.
const RECENT: usize = 4096;

/// What the walk has seen of one chain: its last position and hash, and its last [`RECENT`] hashes.
#[derive(Default)]
struct Walked {
    last: i64,
    recent: std::collections::VecDeque<String>,
}

impl Walked {
    fn hash(&self) -> &str {
        self.recent.back().map_or(GENESIS, String::as_str)
    }

    /// The hash of the row at `link`, if it is among those kept.
    fn hash_at(&self, link: i64) -> Option<&str> {
        let back = usize::try_from(self.last - link).ok()?;
        let i = self.recent.len().checked_sub(back + 1)?;
        self.recent.get(i).map(String::as_str)
    }

    fn push(&mut self, link: i64, hash: &str) {
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(hash.to_string());
        self.last = link;
    }
}

/// Checks rows in `seq` order: first told the rows that name others ([`Checker::note_links`]), then
/// every row ([`Checker::check`]). Memory: a few hashes per chain and per fork, whatever the trail's
/// length.
#[derive(Default)]
struct Checker {
    rows: u64,
    head: Option<String>,
    chains: HashMap<String, Walked>,
    /// Rows that chains fork from (by `seq`)…
    want_seq: HashSet<i64>,
    /// …and their hashes, once walked.
    seen_seq: HashMap<i64, String>,
}

impl Checker {
    fn note_links(&mut self, r: &AuditRow) {
        if r.chain.is_empty() {
            return;
        }
        if r.action == CHAIN_START
            && let Some(n) = fork_seq(r).filter(|n| *n > 0)
        {
            self.want_seq.insert(n);
        }
    }

    fn check(&mut self, r: &AuditRow) -> Result<(), Verdict> {
        let broken = |reason: String| Err(Verdict::Broken { seq: r.seq, reason });
        let legacy = r.chain.is_empty();
        if !legacy && r.link.is_none() {
            return broken(format!("it has no place in its chain {}", r.chain));
        }
        let pos = r.position();
        let prev = match self.chains.get(&r.chain) {
            Some(w) => {
                let last = &w.last;
                if pos != last + 1 {
                    return broken(if legacy {
                        format!("row {} is missing (the next row is {})", last + 1, r.seq)
                    } else if pos <= *last {
                        format!("it is out of order: link {pos} of chain {} after link {last}", r.chain)
                    } else {
                        format!("link {} of chain {} is missing (the next is link {pos})", last + 1, r.chain)
                    });
                }
                w.hash().to_string()
            }
            None if pos != 1 => {
                return broken(if legacy {
                    format!("row 1 is missing (the next row is {})", r.seq)
                } else {
                    format!("link 1 of chain {} is missing (its first row is link {pos})", r.chain)
                });
            }
            None if legacy => GENESIS.to_string(),
            None => {
                if r.action != CHAIN_START {
                    return broken(format!("chain {} does not begin with a {CHAIN_START} row", r.chain));
                }
                match fork_seq(r) {
                    Some(0) => GENESIS.to_string(),
                    Some(n) => match self.seen_seq.get(&n) {
                        Some(h) => h.clone(),
                        None => return broken(format!("row {n}, which chain {} forks from, is missing", r.chain)),
                    },
                    None => return broken(format!("chain {} names no row it forks from", r.chain)),
                }
            }
        };
        if r.prev_hash != prev {
            return broken("its link to the row before does not match that row's hash".into());
        }
        if row_hash(&prev, r) != r.hash {
            return broken("its contents do not match its hash (the row was changed)".into());
        }
        if !legacy && r.action == ANCHOR {
            for (chain, link, hash) in heads(r) {
                match self.chains.get(&chain) {
                    Some(w) if link <= w.last => {
                        if w.hash_at(link).is_some_and(|h| h != hash) {
                            return broken(format!(
                                "link {link} of chain {} does not have the hash this anchor names",
                                chain_name(&chain)
                            ));
                        }
                    }
                    _ => {
                        return broken(format!(
                            "link {link} of chain {}, which this anchor names, is missing",
                            chain_name(&chain)
                        ));
                    }
                }
            }
        }
        if self.want_seq.contains(&r.seq) {
            self.seen_seq.insert(r.seq, r.hash.clone());
        }
        match self.chains.get_mut(&r.chain) {
            Some(w) => w.push(pos, &r.hash),
            None => {
                let mut w = Walked::default();
                w.push(pos, &r.hash);
                self.chains.insert(r.chain.clone(), w);
            }
        }
        self.head = Some(r.hash.clone());
        self.rows += 1;
        Ok(())
    }

    fn verdict(self) -> Verdict {
        Verdict::Intact {
            rows: self.rows,
            chains: self.chains.len(),
            head: self.head.unwrap_or_else(|| GENESIS.to_string()),
        }
    }
}

/// Writes every row as one JSON object per line, oldest first; returns how many.
pub async fn export(store: &Store, out: &mut dyn std::io::Write) -> crate::Result<u64> {
    let mut n = 0;
    let mut failed = None;
    store
        .audit_scan(false, &mut |_, r| {
            let detail: Value = serde_json::from_str(&r.detail).unwrap_or(Value::String(r.detail.clone()));
            let line = json!({
                "seq": r.seq,
                "chain": r.chain,
                "link": r.position(),
                "at": crate::clock::rfc3339(r.at),
                "actor": r.actor,
                "action": r.action,
                "subject": r.subject,
                "outcome": r.outcome,
                "detail": detail,
                "prev_hash": r.prev_hash,
                "hash": r.hash,
            });
            match writeln!(out, "{line}") {
                Ok(()) => {
                    n += 1;
                    true
                }
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        })
        .await?;
    match failed {
        Some(e) => Err(crate::Error::invalid("export_failed", e.to_string())),
        None => Ok(n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(seq: i64, prev: &str, detail: &str) -> AuditRow {
        let mut r = AuditRow {
            seq,
            chain: String::new(),
            link: None,
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
            c.note_links(r);
        }
        for r in rows {
            if let Err(v) = c.check(r) {
                return v;
            }
        }
        c.verdict()
    }

    /// Appends to `rows` the next row of `chain` (its first: a start forking from the last row of
    /// `rows`), with `action` and `detail`, at the next `seq`.
    fn append(rows: &mut Vec<AuditRow>, chain: &str, action: &str, detail: String) {
        let seq = rows.last().map_or(1, |r| r.seq + 1);
        let last = rows.iter().rev().find(|r| r.chain == chain).map(|r| (r.position(), r.hash.clone()));
        let (link, prev, action, detail) = match last {
            Some((link, hash)) => (link + 1, hash, action.to_string(), detail),
            None => {
                let fork = rows.last().map_or((0, GENESIS.to_string()), |r| (r.seq, r.hash.clone()));
                (1, fork.1, CHAIN_START.to_string(), start_detail(fork.0))
            }
        };
        let mut r = AuditRow {
            seq,
            chain: chain.into(),
            link: Some(link),
            at: 1_800_000_000_000 + seq,
            actor: "system".into(),
            action,
            subject: None,
            outcome: "ok".into(),
            detail,
            prev_hash: prev,
            hash: String::new(),
        };
        r.hash = row_hash(&r.prev_hash.clone(), &r);
        rows.push(r);
    }

    fn anchor_of(rows: &[AuditRow], chain: &str) -> String {
        let last = rows.iter().rev().find(|r| r.chain == chain).unwrap();
        let head = crate::store::AuditHead { chain: chain.into(), link: last.position(), hash: last.hash.clone() };
        anchor_detail(&[head])
    }

    /// A legacy trail of 3, then node A's chain and node B's chain interleaved; each anchors the
    /// other once.
    fn two_chains() -> Vec<AuditRow> {
        let mut rows = chain(3);
        for i in 0..4 {
            append(&mut rows, "a", "detokenize", "{}".into());
            append(&mut rows, "b", "instrument.register", format!("{{\"i\":{i}}}"));
        }
        let d = anchor_of(&rows, "b");
        append(&mut rows, "a", ANCHOR, d);
        append(&mut rows, "b", "detokenize", "{}".into());
        let d = anchor_of(&rows, "a");
        append(&mut rows, "b", ANCHOR, d);
        append(&mut rows, "a", "detokenize", "{}".into());
        rows
    }

    #[test]
    fn the_hash_is_sha256_over_length_prefixed_fields() {
        // Computed independently: python3 -c "import hashlib; f=lambda b: len(b).to_bytes(8,'big')+b;
        // print(hashlib.sha256(b''.join(map(f,[b'0'*64,b'1',b'5',b'cli',b'key.create',b'\x01dek',b'ok',b'{}']))).hexdigest())"
        let f =
            |subject| AuditFields { at: 5, actor: "cli", action: "key.create", subject, outcome: "ok", detail: "{}" };
        let h = chain_hash(GENESIS, 1, "", &f(Some("dek")));
        assert_eq!(h, "cc641cbdb988c4aad6190af71fdd7f600d09d7e71654c95ef86696cd015e17a1");
        assert_ne!(h, chain_hash(GENESIS, 1, "", &f(None)));
        assert_ne!(h, chain_hash(GENESIS, 1, "", &f(Some(""))));
        // A chain's rows also hash the chain id (the same python with b'c1' appended to the list).
        assert_eq!(
            chain_hash(GENESIS, 1, "c1", &f(Some("dek"))),
            "e578fe63b7225f05c2307ff7d767d11aa9ab2484144a7e55cab8d69e1db72c87"
        );
    }

    #[test]
    fn the_walk_keeps_a_chains_last_hashes() {
        let mut w = Walked::default();
        assert_eq!(w.hash(), GENESIS);
        for link in 1..=(RECENT as i64 + 10) {
            w.push(link, &format!("h{link}"));
        }
        assert_eq!(w.hash(), format!("h{}", RECENT + 10));
        assert_eq!(w.hash_at(RECENT as i64 + 10), Some(format!("h{}", RECENT + 10).as_str()));
        assert_eq!(w.hash_at(11), Some("h11"));
        assert_eq!(w.hash_at(10), None, "older than what is kept");
        assert_eq!(w.hash_at(RECENT as i64 + 11), None, "not walked yet");
    }

    #[test]
    fn an_untouched_chain_is_intact() {
        let rows = chain(5);
        assert_eq!(walk(&rows), Verdict::Intact { rows: 5, chains: 1, head: rows[4].hash.clone() });
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

    #[test]
    fn interleaved_chains_with_forks_and_anchors_are_intact() {
        let rows = two_chains();
        let last = rows.last().unwrap().hash.clone();
        assert_eq!(walk(&rows), Verdict::Intact { rows: rows.len() as u64, chains: 3, head: last });
        // The first new chain forks from the legacy chain's last row.
        assert_eq!(rows[3].prev_hash, rows[2].hash);
        assert_eq!(rows[3].action, CHAIN_START);
    }

    fn find(rows: &[AuditRow], chain: &str, link: i64) -> usize {
        rows.iter().position(|r| r.chain == chain && r.position() == link).unwrap()
    }

    #[test]
    fn tampering_with_one_chain_among_several_is_named() {
        // A changed row of chain b.
        let mut rows = two_chains();
        let i = find(&rows, "b", 3);
        rows[i].outcome = "forged".into();
        assert_eq!(
            walk(&rows),
            Verdict::Broken {
                seq: rows[i].seq,
                reason: "its contents do not match its hash (the row was changed)".into()
            }
        );

        // A row of chain b removed from its middle: its next row names the gap.
        let mut rows = two_chains();
        let i = find(&rows, "b", 3);
        rows.remove(i);
        let next = rows[find(&rows, "b", 4)].seq;
        assert!(
            matches!(walk(&rows), Verdict::Broken { seq, ref reason } if seq == next && reason.contains("link 3 of chain b is missing")),
            "{:?}",
            walk(&rows)
        );

        // Two rows of chain a swapped in the order (their seq exchanged).
        let mut rows = two_chains();
        let (i, j) = (find(&rows, "a", 2), find(&rows, "a", 3));
        let (si, sj) = (rows[i].seq, rows[j].seq);
        rows[i].seq = sj;
        rows[j].seq = si;
        rows.sort_by_key(|r| r.seq);
        assert!(matches!(walk(&rows), Verdict::Broken { seq, .. } if seq == si), "{:?}", walk(&rows));

        // Chain b's tail up to what chain a anchored, removed: the anchor names the missing row.
        let mut rows = two_chains();
        let anchor = rows.iter().find(|r| r.chain == "a" && r.action == ANCHOR).unwrap().seq;
        let named = heads(rows.iter().find(|r| r.seq == anchor).unwrap())[0].1;
        rows.retain(|r| !(r.chain == "b" && r.position() >= named && r.seq < anchor));
        let rest: Vec<AuditRow> = rows.iter().filter(|r| r.seq <= anchor).cloned().collect();
        assert!(
            matches!(walk(&rest), Verdict::Broken { seq, ref reason } if seq == anchor && reason.contains("missing")),
            "{:?}",
            walk(&rest)
        );

        // Chain b rewritten from the row chain a anchored on, each row rehashed so that b itself
        // holds: the anchor's hash no longer matches.
        let mut rows = two_chains();
        let anchor = rows.iter().find(|r| r.chain == "a" && r.action == ANCHOR).unwrap().seq;
        let named = heads(rows.iter().find(|r| r.seq == anchor).unwrap())[0].1;
        let mut prev = rows[find(&rows, "b", named - 1)].hash.clone();
        for r in rows.iter_mut().filter(|r| r.chain == "b" && r.position() >= named) {
            if r.position() == named {
                r.outcome = "forged".into();
            }
            r.prev_hash = prev.clone();
            r.hash = row_hash(&prev, r);
            prev = r.hash.clone();
        }
        assert!(
            matches!(walk(&rows), Verdict::Broken { seq, ref reason } if seq == anchor && reason.contains("does not have the hash")),
            "{:?}",
            walk(&rows)
        );

        // A whole chain removed: the anchor of the other chain names it.
        let mut rows = two_chains();
        rows.retain(|r| r.chain != "b");
        assert!(
            matches!(walk(&rows), Verdict::Broken { ref reason, .. } if reason.contains("chain b")),
            "{:?}",
            walk(&rows)
        );

        // A chain's start removed (chain b forked from it: its start names the loss first).
        let mut rows = two_chains();
        let i = find(&rows, "a", 1);
        rows.remove(i);
        assert!(
            matches!(walk(&rows), Verdict::Broken { ref reason, .. } if reason.contains("is missing")),
            "{:?}",
            walk(&rows)
        );
        let mut rows = two_chains();
        rows.retain(|r| !(r.chain == "a" && r.position() == 1) && r.chain != "b");
        assert!(
            matches!(walk(&rows), Verdict::Broken { ref reason, .. } if reason.contains("link 1 of chain a is missing")),
            "{:?}",
            walk(&rows)
        );

        // The row a chain forks from removed (the legacy chain's tail).
        let mut rows = two_chains();
        rows.remove(2);
        assert!(
            matches!(walk(&rows), Verdict::Broken { ref reason, .. } if reason.contains("forks from, is missing")),
            "{:?}",
            walk(&rows)
        );
    }
}
