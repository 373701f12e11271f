//! Secure aggregation between the task's relayed messages and the cryptography:
//! [`SecureMember`] is a hospital's side (its secrets never leave it), and
//! [`Unmasking`] is what the coordinator rebuilds from the task to recover the sum.
//! Both speak the domain's [`SecureRound`] (what the task relays) and the member
//! numbers the task's spec gives each hospital.

use std::collections::{BTreeMap, BTreeSet};

use emr_domain::federated::TaskSpec;
use emr_domain::federated::secure::{Opaque, RevealedShare, SecretKind, SecureMessage, SecureRound};
use emr_domain::ids::{HospitalId, TaskId};
use emr_learning::secure::{self, Advertisement, Member, Participant, Roster, SealedShare, Secret, SecureAggregationError};

/// Why a secure-aggregation step could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum SecureStepError {
    /// The cryptography refused (a bad share, too few survivors, a vector out of range).
    #[error(transparent)]
    Protocol(#[from] SecureAggregationError),
    /// The relayed round does not fit the task (a hospital with no member number,
    /// a missing key).
    #[error("secure round: {0}")]
    Round(String),
}

/// What binds one run's masks and seals to its task and round.
fn context(task: TaskId, round: u32) -> Vec<u8> {
    format!("{task}/{round}").into_bytes()
}

fn member(spec: &TaskSpec, hospital: &HospitalId) -> Result<Member, SecureStepError> {
    spec.member_number(hospital).ok_or_else(|| SecureStepError::Round(format!("{hospital} has no member number in this task")))
}

fn key(bytes: &Opaque) -> Result<[u8; 32], SecureStepError> {
    bytes.as_bytes().try_into().map_err(|_| SecureStepError::Round("a public key is not 32 bytes".into()))
}

fn kind_of(secret: Secret) -> SecretKind {
    match secret {
        Secret::SelfMask => SecretKind::SelfMask,
        Secret::MaskKey => SecretKind::MaskKey,
    }
}

fn secret_of(kind: SecretKind) -> Secret {
    match kind {
        SecretKind::SelfMask => Secret::SelfMask,
        SecretKind::MaskKey => Secret::MaskKey,
    }
}

/// The roster of `hospitals` from the round's advertised keys.
fn roster(
    spec: &TaskSpec,
    round: &SecureRound,
    hospitals: &BTreeSet<HospitalId>,
    task: TaskId,
    number: u32,
) -> Result<Roster, SecureStepError> {
    let advertisements = hospitals
        .iter()
        .map(|hospital| {
            let keys = round.keys.get(hospital).ok_or_else(|| SecureStepError::Round(format!("{hospital} advertised no keys")))?;
            Ok(Advertisement {
                member: member(spec, hospital)?,
                sealing_key: key(&keys.sealing_key)?,
                masking_key: key(&keys.masking_key)?,
            })
        })
        .collect::<Result<Vec<_>, SecureStepError>>()?;
    Ok(Roster::new(&advertisements, round.threshold(), &context(task, number))?)
}

/// A hospital's side of one secure round: its key pairs, mask seed and the shares
/// it holds for the others, kept in memory for the round alone.
pub struct SecureMember {
    task: TaskId,
    round: u32,
    hospital: HospitalId,
    participant: Participant,
    received: bool,
}

impl SecureMember {
    /// Joins round `round` of `task`, with fresh secrets; returns the keys message to send.
    pub fn join(spec: &TaskSpec, task: TaskId, round: u32, hospital: HospitalId) -> Result<(Self, SecureMessage), SecureStepError> {
        let (participant, advertisement) = Participant::new(member(spec, &hospital)?)?;
        let keys = SecureMessage::Keys {
            sealing_key: Opaque::new(advertisement.sealing_key.to_vec()),
            masking_key: Opaque::new(advertisement.masking_key.to_vec()),
        };
        Ok((Self { task, round, hospital, participant, received: false }, keys))
    }

    /// The round it joined.
    pub fn round(&self) -> u32 {
        self.round
    }

    /// The sealed shares of its secrets, one for every roster member.
    pub fn share(&self, spec: &TaskSpec, view: &SecureRound) -> Result<SecureMessage, SecureStepError> {
        let hospitals: BTreeSet<HospitalId> = view.keys.keys().cloned().collect();
        let roster = roster(spec, view, &hospitals, self.task, self.round)?;
        let by_member: BTreeMap<Member, HospitalId> =
            hospitals.iter().map(|h| Ok((member(spec, h)?, h.clone()))).collect::<Result<_, SecureStepError>>()?;
        let shares = self
            .participant
            .share(&roster)?
            .into_iter()
            .map(|sealed| {
                let to = by_member.get(&sealed.to).ok_or_else(|| SecureStepError::Round(format!("no hospital is member {}", sealed.to)))?;
                Ok((to.clone(), Opaque::new(sealed.ciphertext)))
            })
            .collect::<Result<_, SecureStepError>>()?;
        Ok(SecureMessage::Shares { shares })
    }

    /// Opens the shares addressed to it (once) and masks `values` for the sharers.
    pub fn mask(&mut self, spec: &TaskSpec, view: &SecureRound, values: &[f64]) -> Result<Vec<u64>, SecureStepError> {
        let roster = roster(spec, view, &view.sharers, self.task, self.round)?;
        if !self.received {
            let me = member(spec, &self.hospital)?;
            let sealed = view
                .shares_for(&self.hospital)
                .into_iter()
                .filter(|(from, _)| view.sharers.contains(from))
                .map(|(from, ciphertext)| {
                    Ok(SealedShare { from: member(spec, &from)?, to: me, ciphertext: ciphertext.as_bytes().to_vec() })
                })
                .collect::<Result<Vec<_>, SecureStepError>>()?;
            if sealed.len() != view.sharers.len() {
                return Err(SecureStepError::Round(format!("{} of {} sharers' shares arrived", sealed.len(), view.sharers.len())));
            }
            self.participant.receive(&roster, &sealed)?;
            self.received = true;
        }
        Ok(self.participant.mask(&roster, values)?)
    }

    /// Its shares of the survivors' self-mask seeds and the dropouts' mask keys.
    pub fn reveal(&self, spec: &TaskSpec, view: &SecureRound) -> Result<SecureMessage, SecureStepError> {
        let numbers =
            |hospitals: &mut dyn Iterator<Item = &HospitalId>| hospitals.map(|h| member(spec, h)).collect::<Result<BTreeSet<_>, _>>();
        let survivors = numbers(&mut view.survivors.iter())?;
        let dropped = numbers(&mut view.sharers.iter().filter(|h| !view.survivors.contains(*h)))?;
        let by_member: BTreeMap<Member, &HospitalId> =
            view.sharers.iter().map(|h| Ok((member(spec, h)?, h))).collect::<Result<_, SecureStepError>>()?;
        let shares = self
            .participant
            .reveal(&survivors, &dropped)?
            .into_iter()
            .map(|revealed| {
                let owner = by_member
                    .get(&revealed.owner)
                    .ok_or_else(|| SecureStepError::Round(format!("no sharer is member {}", revealed.owner)))?;
                Ok(RevealedShare { owner: (*owner).clone(), secret: kind_of(revealed.secret), share: Opaque::new(revealed.share) })
            })
            .collect::<Result<_, SecureStepError>>()?;
        Ok(SecureMessage::Reveal { shares })
    }
}

/// What the coordinator needs to recover a secure round's sum: the sharers' roster,
/// each hospital's member number and the shares the survivors revealed.
pub(crate) struct Unmasking {
    roster: Roster,
    members: BTreeMap<HospitalId, Member>,
    revealed: Vec<secure::RevealedShare>,
}

impl Unmasking {
    /// From the task's record of the round.
    pub(crate) fn of(spec: &TaskSpec, view: &SecureRound, task: TaskId, round: u32) -> Result<Self, SecureStepError> {
        let roster = roster(spec, view, &view.sharers, task, round)?;
        let members = view.sharers.iter().map(|h| Ok((h.clone(), member(spec, h)?))).collect::<Result<_, SecureStepError>>()?;
        let revealed = view
            .reveals
            .values()
            .flatten()
            .map(|r| {
                Ok(secure::RevealedShare {
                    owner: member(spec, &r.owner)?,
                    secret: secret_of(r.secret),
                    share: r.share.as_bytes().to_vec(),
                })
            })
            .collect::<Result<_, SecureStepError>>()?;
        Ok(Self { roster, members, revealed })
    }

    /// The sum of the survivors' vectors, from their masked updates.
    pub(crate) fn sum(&self, masked: BTreeMap<HospitalId, Vec<u64>>) -> Result<Vec<f64>, SecureStepError> {
        let by_member = masked
            .into_iter()
            .map(|(hospital, words)| {
                let member = self.members.get(&hospital).ok_or_else(|| SecureStepError::Round(format!("{hospital} did not share")))?;
                Ok((*member, words))
            })
            .collect::<Result<BTreeMap<_, _>, SecureStepError>>()?;
        Ok(secure::unmask(&self.roster, &by_member, &self.revealed)?)
    }
}
