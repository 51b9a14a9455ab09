//! Registering a card with its issuer's consent (docs/instruments.md "Step-up verification").
//!
//! A card new to a requestor is first put to its issuer as a *token activation request*: `0100`
//! with DE3 `330000`, amount zero, the card and the token requestor (DE48 `TR`). The issuer
//! answers `00` (approve: the card is active, assurance `issuer_approved`), `85` (approve with
//! step-up: DE48 lists the ways it can reach the cardholder, `VS` a masked phone for SMS, `VA` its
//! app; the card is `pending_verification`) or anything else (declined: nothing is stored). An issuer
//! that cannot be asked — no answer, or `12` (it takes no activation requests) — gets its configured
//! stand-in (`activation_stand_in`: approve with assurance `stand_in`, or decline).
//!
//! In a step-up the requestor picks a way; tsp draws a one-time code and asks the issuer to deliver
//! it (`0100`, DE3 `340000`, DE48 `VM` the method and `AC` the code); only its HMAC under the HSM
//! key [`CODE_KEY`] is stored. The cardholder types the code into the requestor's app, which posts it
//! to `/verify`; the rules of [`crate::instruments::verification`] decide, the store repeats their
//! conditions in the statement that acts.

use hsm_sim::{KeyRef, KeyUsage};
use subtle::ConstantTimeEq;

use super::issuer::Exchange;
use super::{Payments, ResponseCode};
use crate::config::StandIn;
use crate::hsm::Hsm;
use crate::instruments::assurance::{Assurance, Method};
use crate::instruments::verification::{self, Code, Offer, Refusal};
use crate::iso8583::{Message, Mti, private};
use crate::requestors::Requestor;
use crate::store::{InstrumentRow, InstrumentStatus, NewCode};
use crate::vault::{Admission, NewCard, Registration};
use crate::{Error, Result};

/// The HSM key one-time codes are MACed under.
pub const CODE_KEY: &str = "tsp.verification.code";

/// Processing codes of the two messages (DE3).
const ACTIVATION_REQUEST: &str = "330000";
const ACTIVATION_CODE: &str = "340000";

/// What the issuer made of a registration.
enum Decision {
    Approve,
    StepUp(Vec<Offer>),
    Decline(ResponseCode),
    /// It could not be asked, or takes no activation requests.
    CannotAsk,
}

/// A code on its way to the cardholder, as the requestor is told of it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CodeSent {
    pub method: Method,
    pub destination: String,
    pub expires_at: i64,
    pub attempts_left: i64,
    pub codes_left: i64,
}

/// A pending registration's verification as the API shows it.
#[derive(Debug, Clone)]
pub struct Pending {
    pub state: verification::State,
    pub policy: verification::Policy,
}

impl Payments {
    /// Creates the HSM key one-time codes are MACed under, if it is not there yet.
    pub async fn load_verification_key(hsm: &Hsm) -> Result<()> {
        hsm.ensure_key(CODE_KEY, KeyUsage::Hmac).await?;
        Ok(())
    }

    fn policy(&self) -> verification::Policy {
        self.config.verification.policy()
    }

    /// Registers a card for `requestor` as its issuer decides. Returns the instrument and whether it
    /// is new (the requestor's existing instrument of the card comes back without asking again).
    pub async fn register_card(&self, requestor: &Requestor, pan: &str, expiry: &str) -> Result<(InstrumentRow, bool)> {
        let card = match self.vault.check_card(&requestor.id, pan, expiry).await? {
            Registration::Existing(row) => return Ok((*row, false)),
            Registration::New(card) => card,
        };
        let admission = match self.activation(&card, &requestor.trid).await {
            Decision::Approve => Admission::Active(Assurance::IssuerApproved),
            Decision::StepUp(offers) => Admission::Pending(offers),
            Decision::Decline(code) => return Err(Error::RegistrationDeclined { response_code: code.as_str().into() }),
            Decision::CannotAsk => match self.stand_in(card.issuer_id()) {
                StandIn::Approve => Admission::Active(Assurance::StandIn),
                StandIn::Decline => {
                    return Err(Error::RegistrationDeclined {
                        response_code: ResponseCode::ISSUER_UNAVAILABLE.as_str().into(),
                    });
                }
            },
        };
        self.vault.add_card(card, admission).await
    }

    fn stand_in(&self, issuer_id: &str) -> StandIn {
        self.config.issuers.iter().find(|i| i.id == issuer_id).map(|i| i.activation_stand_in).unwrap_or_default()
    }

    /// The token activation request and what its answer means.
    async fn activation(&self, card: &NewCard, trid: &str) -> Decision {
        let mut data = String::new();
        let _ = private::push(&mut data, "TR", trid);
        let msg = self.activation_message(ACTIVATION_REQUEST, card.pan().expose(), &card.expiry().yymm(), &data);
        let answer = match self.exchange(Some(card.issuer_id()), msg).await {
            Exchange::Answer(a) => a,
            Exchange::Unavailable | Exchange::Unknown => return Decision::CannotAsk,
        };
        match answer.response_code() {
            Some("00") => Decision::Approve,
            Some("85") => {
                let data = answer.get(48).unwrap_or("");
                let offers: Vec<Offer> = private::parse(data)
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|(tag, dest)| {
                        let method = match tag {
                            "VS" => Method::Sms,
                            "VA" => Method::App,
                            _ => return None,
                        };
                        Some(Offer { method: method.as_str().into(), destination: dest.to_string() })
                    })
                    .collect();
                // A step-up with no way to reach the cardholder could never finish: declined.
                if offers.is_empty() { Decision::Decline(ResponseCode::DO_NOT_HONOR) } else { Decision::StepUp(offers) }
            }
            Some("12") => Decision::CannotAsk,
            Some(code) => Decision::Decline(ResponseCode::parse(code).unwrap_or(ResponseCode::DO_NOT_HONOR)),
            None => Decision::Decline(ResponseCode::SYSTEM_ERROR),
        }
    }

    /// A `0100` of this processing code about card `pan`, with DE48 `data`.
    fn activation_message(&self, processing_code: &str, pan: &str, expiry: &str, data: &str) -> Message {
        let now = self.clock.now_ms();
        let mut stan = [0u8; 4];
        let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut stan);
        let mut out = Message::new(Mti::AUTHORIZATION_REQUEST);
        let _ = out.set_processing_code(processing_code);
        let _ = out.set_amount(0);
        let _ = out.set_transmission_date_time(&crate::clock::de7(now));
        let _ = out.set_stan(&format!("{:06}", u32::from_be_bytes(stan) % 1_000_000));
        let _ = out.set_terminal_id("TSPREST0");
        let _ = out.set_acquirer_id("0");
        let _ = out.set_pan(pan);
        let _ = out.set_expiry(expiry);
        if !data.is_empty() {
            let _ = out.set_additional_data(data);
        }
        out
    }

    /// The requestor's instrument `id` pending step-up, with its verification.
    async fn pending(&self, requestor: &Requestor, id: &str) -> Result<(InstrumentRow, verification::State)> {
        let instrument = self.vault.instrument(requestor, id).await?;
        match instrument.status {
            InstrumentStatus::PendingVerification => {}
            InstrumentStatus::Active => return Err(Error::InstrumentActive),
            other => return Err(other.refusal().unwrap_or(Error::InstrumentDeleted)),
        }
        let row = self.store.verification(id).await?.ok_or(Error::InstrumentDeleted)?;
        Ok((instrument, state_of(&row)?))
    }

    /// What the API shows of a pending instrument's verification (None for any other).
    pub async fn verification_of(&self, instrument: &InstrumentRow) -> Result<Option<Pending>> {
        if instrument.status != InstrumentStatus::PendingVerification {
            return Ok(None);
        }
        let Some(row) = self.store.verification(&instrument.id).await? else { return Ok(None) };
        Ok(Some(Pending { state: state_of(&row)?, policy: self.policy() }))
    }

    /// Has the issuer send a one-time code by `method` for the pending instrument `id`.
    pub async fn send_code(&self, requestor: &Requestor, id: &str, method: &str) -> Result<CodeSent> {
        let method =
            Method::parse(method).ok_or_else(|| Error::invalid("method_invalid", "method must be sms or app"))?;
        let policy = self.policy();
        let (instrument, state) = self.pending(requestor, id).await?;
        state.may_send(method, &policy)?;
        let code =
            Code::generate(&ring::rand::SystemRandom::new()).map_err(|_| Error::Internal("no randomness".into()))?;
        let pan = self.vault.reveal_pan(&instrument).await?;
        // (It holds the code.)
        let mut data = zeroize::Zeroizing::new(String::new());
        let _ = private::push(&mut data, "TR", &requestor.trid);
        let _ = private::push(&mut data, "VM", &method.letter().to_string());
        let _ = private::push(&mut data, "AC", code.expose());
        let msg = self.activation_message(
            ACTIVATION_CODE,
            pan.expose(),
            instrument.expiry.as_deref().unwrap_or("0000"),
            &data,
        );
        drop(data);
        drop(pan);
        match self.exchange(instrument.issuer_id.as_deref(), msg).await {
            Exchange::Answer(a) if a.response_code() == Some("00") => {}
            _ => return Err(Error::IssuerUnavailable),
        }
        let mac = self.code_mac(id, &code).await?;
        let now = self.clock.now_ms();
        let expires_at = now.saturating_add(policy.code_ttl_ms);
        let recorded = self
            .store
            .record_code(
                &NewCode { instrument_id: id, method: method.as_str(), code_mac: &mac, expires_at, now },
                policy.max_codes,
            )
            .await?;
        if !recorded {
            // Another request sent the last code, or the registration ended, meanwhile.
            let (_, state) = self.pending(requestor, id).await?;
            state.may_send(method, &policy)?;
            return Err(Refusal::CodesExhausted.into());
        }
        let destination = state.offered.iter().find(|o| o.method == method.as_str()).map(|o| o.destination.clone());
        Ok(CodeSent {
            method,
            destination: destination.unwrap_or_default(),
            expires_at,
            attempts_left: state.attempts_left(&policy),
            codes_left: (state.codes_left(&policy) - 1).max(0),
        })
    }

    /// Checks the code the cardholder entered for the pending instrument `id`: right, the instrument
    /// is active with the assurance of the code's method.
    pub async fn verify_code(&self, requestor: &Requestor, id: &str, code: &str) -> Result<InstrumentRow> {
        let code = Code::parse(code).ok_or_else(|| {
            Error::invalid("code_format", format!("code must be {} digits", verification::CODE_DIGITS))
        })?;
        let policy = self.policy();
        let (_, state) = self.pending(requestor, id).await?;
        let now = self.clock.now_ms();
        let method = state.may_check(now, &policy)?;
        let stored = self.store.verification(id).await?.and_then(|v| v.code_mac).unwrap_or_default();
        let mac = self.code_mac(id, &code).await?;
        if bool::from(mac.as_slice().ct_eq(stored.as_slice())) {
            let assurance = Assurance::of_method(method);
            if let Some(row) = self.store.pass_verification(id, &mac, assurance, policy.max_attempts, now).await? {
                return Ok(row);
            }
            // The conditions changed meanwhile (a new code, the last attempt used, expiry): say which.
            let (_, state) = self.pending(requestor, id).await?;
            state.may_check(self.clock.now_ms(), &policy)?;
            return Err(Refusal::Expired.into());
        }
        match self.store.fail_verification(id, policy.max_attempts, now).await? {
            Some(failed) => Err(verification::after_wrong_code(failed, &policy).into()),
            None => Err(Refusal::Exhausted.into()),
        }
    }

    /// HMAC-SHA-256 of the code, bound to its instrument.
    async fn code_mac(&self, id: &str, code: &Code) -> Result<Vec<u8>> {
        let input = zeroize::Zeroizing::new(format!("{id}:{}", code.expose()));
        Ok(self.hsm.hmac(KeyRef::stored(CODE_KEY), input.as_bytes()).await?)
    }
}

fn state_of(row: &crate::store::VerificationRow) -> Result<verification::State> {
    let offered: Vec<Offer> = serde_json::from_str(&row.offered)
        .map_err(|_| Error::Store(crate::store::StoreError::Corrupt("verification offers are not JSON".into())))?;
    Ok(verification::State {
        offered,
        method: row.method.as_deref().and_then(Method::parse),
        code_expires_at: row.code_expires_at,
        codes_sent: row.codes_sent,
        failed_attempts: row.failed_attempts,
    })
}
