//! What each ISO 8583 mode of `tsp load` sends, one [`Driver`] per connection.
//!
//! - [`Echo`]: `0800` network management (DE70 `301`) → `0810` with `00`.
//! - [`Pay`]: `0200` purchases (DE3 `000000`, DE22 `031`, DE49 `410`) of [`AMOUNT`] KRW, each with a
//!   one-time token issued before the timed part → `0210` with `00`.
//! - [`Mixed`]: a fixed pattern of three payments (card, gift certificate, local-currency wallet in
//!   turn), one partial cancel (half the amount, `0200` DE3 `200000` with DE90) and one reversal
//!   (`0400`), each follow-up of its own earlier approved payment → `00` each.
//!
//! Payments, cancels and reversals are built by [`Requests`] (its STANs, DE7, DE12/13 and DE90), so
//! the load tool sends what the project's terminal sends.

use super::iso::{Driver, Kind, Next, Outgoing, Paid, Shared};
use crate::iso8583::{Message, Mti};
use crate::terminal::Requests;

/// Every payment's amount, in KRW (minor units = major units). The issuer simulator's limit of
/// 5,000,000 per card leaves room for 50,000 payments per card.
pub const AMOUNT: u64 = 100;

/// DE42 of card and gift payments.
pub const MERCHANT: &str = "LOADTEST0000001";

/// DE42 of local-currency payments: a merchant of the demo region `seoul-gangnam`.
pub const LOCAL_MERCHANT: &str = "GN-CAFE-0001";

/// DE7 (`MMDDhhmmss`, UTC) now.
fn transmission_now() -> String {
    let now = time::OffsetDateTime::now_utc();
    format!("{:02}{:02}{:02}{:02}{:02}", now.month() as u8, now.day(), now.hour(), now.minute(), now.second())
}

/// `0800` echoes on one connection.
pub struct Echo {
    terminal_id: String,
    stan: u32,
    /// Requests left; None: until the deadline.
    left: Option<u64>,
}

impl Echo {
    pub fn new(terminal_id: &str, quota: Option<u64>) -> Echo {
        Echo { terminal_id: format!("{terminal_id:<8.8}"), stan: 0, left: quota }
    }

    fn build(&mut self) -> Result<Message, crate::iso8583::CodecError> {
        self.stan = self.stan % 999_999 + 1;
        let mut m = Message::new(Mti::NETWORK_REQUEST);
        m.set_transmission_date_time(&transmission_now())?
            .set_stan(&format!("{:06}", self.stan))?
            .set_terminal_id(&self.terminal_id)?
            .set_network_management_code("301")?;
        Ok(m)
    }
}

impl Driver for Echo {
    fn next(&mut self, _: &mut Shared) -> Next {
        match self.left {
            Some(0) => return Next::Done,
            Some(ref mut n) => *n -= 1,
            None => {}
        }
        match self.build() {
            Ok(msg) => Next::Send(Box::new(Outgoing { msg, op: "echo", code: "00", paid: None })),
            Err(_) => Next::Failed,
        }
    }
}

/// Card purchases with pre-issued tokens on one connection.
pub struct Pay {
    term: Requests,
    tokens: Vec<String>,
}

impl Pay {
    pub fn new(term: Requests, mut tokens: Vec<String>) -> Pay {
        tokens.reverse();
        Pay { term, tokens }
    }
}

impl Driver for Pay {
    fn next(&mut self, _: &mut Shared) -> Next {
        let Some(token) = self.tokens.pop() else { return Next::Done };
        match self.term.purchase(&token, AMOUNT) {
            Ok(msg) => Next::Send(Box::new(Outgoing { msg, op: "purchase card", code: "00", paid: None })),
            Err(_) => Next::Failed,
        }
    }
}

/// One step of the mixed pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Pay(Kind),
    Cancel,
    Reverse,
}

/// The steps of connection `conn` with `quota` requests: per five, three payments (the instrument
/// kinds in turn, starting from the connection's number so the kinds spread evenly), a cancel and
/// a reversal.
pub fn schedule(conn: usize, quota: u64) -> Vec<Step> {
    let mut payments = conn;
    (0..quota)
        .map(|i| match i % 5 {
            3 => Step::Cancel,
            4 => Step::Reverse,
            _ => {
                let k = Kind::ALL[payments % 3];
                payments += 1;
                Step::Pay(k)
            }
        })
        .collect()
}

/// How many tokens of each kind (card, gift, local) a schedule pays with.
pub fn tokens_needed(steps: &[Step]) -> [usize; 3] {
    let mut n = [0; 3];
    for s in steps {
        if let Step::Pay(k) = s {
            n[k.index()] += 1;
        }
    }
    n
}

fn op_name(step: Step, kind: Kind) -> &'static str {
    match (step, kind) {
        (Step::Pay(_), Kind::Card) => "purchase card",
        (Step::Pay(_), Kind::Gift) => "purchase gift",
        (Step::Pay(_), Kind::Local) => "purchase local",
        (Step::Cancel, Kind::Card) => "cancel card",
        (Step::Cancel, Kind::Gift) => "cancel gift",
        (Step::Cancel, Kind::Local) => "cancel local",
        (Step::Reverse, Kind::Card) => "reversal card",
        (Step::Reverse, Kind::Gift) => "reversal gift",
        (Step::Reverse, Kind::Local) => "reversal local",
    }
}

/// Payments of the three kinds, partial cancels and reversals on one connection.
pub struct Mixed {
    /// The terminal of card and gift payments ([`MERCHANT`]).
    term: Requests,
    /// The terminal of local-currency payments ([`LOCAL_MERCHANT`]): a terminal pays for one merchant.
    local: Requests,
    /// Tokens per kind (card, gift, local), used from the back.
    tokens: [Vec<String>; 3],
    steps: Vec<Step>,
    pos: usize,
    skipped: u64,
}

impl Mixed {
    pub fn new(term: Requests, local: Requests, steps: Vec<Step>, tokens: [Vec<String>; 3]) -> Mixed {
        Mixed { term, local, tokens, steps, pos: 0, skipped: 0 }
    }

    /// The terminal that pays (and follows up) a payment of `kind`.
    fn terminal(&mut self, kind: Kind) -> &mut Requests {
        if kind == Kind::Local { &mut self.local } else { &mut self.term }
    }

    fn build(&mut self, step: Step, paid: Option<Paid>) -> Option<Outgoing> {
        match (step, paid) {
            (Step::Pay(kind), _) => {
                let token = self.tokens[kind.index()].pop()?;
                let msg = self.terminal(kind).purchase(&token, AMOUNT).ok()?;
                let paid = Paid { request: msg.clone(), amount: AMOUNT, kind };
                Some(Outgoing { msg, op: op_name(step, kind), code: "00", paid: Some(paid) })
            }
            (Step::Cancel, Some(p)) => {
                let msg = self.terminal(p.kind).cancellation(&p.request, p.amount / 2).ok()?;
                Some(Outgoing { msg, op: op_name(step, p.kind), code: "00", paid: None })
            }
            (Step::Reverse, Some(p)) => {
                let msg = self.terminal(p.kind).reversal(&p.request).ok()?;
                Some(Outgoing { msg, op: op_name(step, p.kind), code: "00", paid: None })
            }
            _ => None,
        }
    }
}

impl Driver for Mixed {
    fn next(&mut self, shared: &mut Shared) -> Next {
        loop {
            let Some(&step) = self.steps.get(self.pos) else { return Next::Done };
            let paid = match step {
                Step::Pay(_) => None,
                Step::Cancel | Step::Reverse => match shared.approved.pop_front() {
                    Some(p) => Some(p),
                    // An approval may still come.
                    None if shared.payments_in_flight > 0 => return Next::Wait,
                    // Every payment so far was declined or followed up already.
                    None => {
                        self.pos += 1;
                        self.skipped += 1;
                        continue;
                    }
                },
            };
            self.pos += 1;
            return match self.build(step, paid) {
                Some(out) => Next::Send(Box::new(out)),
                None => Next::Failed,
            };
        }
    }

    fn skipped(&self) -> u64 {
        self.skipped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mixed_pattern() {
        let s = schedule(1, 10);
        assert_eq!(
            s,
            [
                Step::Pay(Kind::Gift),
                Step::Pay(Kind::Local),
                Step::Pay(Kind::Card),
                Step::Cancel,
                Step::Reverse,
                Step::Pay(Kind::Gift),
                Step::Pay(Kind::Local),
                Step::Pay(Kind::Card),
                Step::Cancel,
                Step::Reverse,
            ]
        );
        assert_eq!(tokens_needed(&s), [2, 2, 2]);
        assert_eq!(tokens_needed(&schedule(0, 4)), [1, 1, 1]);
    }

    #[test]
    fn echo_counts_down() {
        let mut e = Echo::new("L0000001", Some(2));
        let mut sh = Shared::default();
        let stans: Vec<String> = (0..2)
            .map(|_| match e.next(&mut sh) {
                Next::Send(o) => o.msg.stan().unwrap_or_default().to_string(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(stans, ["000001", "000002"]);
        assert!(matches!(e.next(&mut sh), Next::Done));
    }
}
