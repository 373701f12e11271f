//! Secure aggregation (Bonawitz et al., "Practical Secure Aggregation for
//! Privacy-Preserving Machine Learning", CCS 2017; the honest-but-curious protocol
//! with double masking): the coordinator learns the sum of the hospitals' vectors
//! and nothing about any one of them, even when hospitals drop out after masking.
//!
//! 1. **Advertise**: each hospital draws two X25519 key pairs, one to encrypt shares
//!    (`c`) and one to agree pairwise masks (`s`), and publishes the public halves.
//! 2. **Share**: each hospital draws a self-mask seed `b` and splits `b` and its mask
//!    secret `s` into Shamir shares (threshold `t`), one per hospital, each sealed
//!    with ChaCha20-Poly1305 under a key agreed through `c`. The coordinator relays
//!    sealed shares it cannot open.
//! 3. **Mask**: each hospital encodes its vector in fixed point modulo 2⁶⁴ and adds
//!    PRG(b) and, for every other hospital v, ±PRG(s_uv), where s_uv is the X25519
//!    agreement of their `s` keys (+ when u < v, − otherwise). Pairwise masks cancel
//!    in the sum; the self-mask hides a vector even from a coordinator that claims
//!    a live hospital dropped out.
//! 4. **Unmask**: every survivor reveals, for each other hospital, the share of `b`
//!    if that hospital's vector arrived and the share of `s` if it did not — never
//!    both for one hospital. The coordinator rebuilds the self-masks of survivors
//!    and the pairwise masks of dropouts, and removes them from the sum.
//!
//! The PRG is ChaCha20 keyed by SHA-256 of the round's context and the seed, so
//! masks never repeat across tasks or rounds.

use std::collections::{BTreeMap, BTreeSet};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use ring::digest::{Context, SHA256};
use ring::rand::{SecureRandom, SystemRandom};
use sharks::{Share, Sharks};
use x25519_dalek::{PublicKey, StaticSecret};

/// A hospital's place in the protocol, 1 to 255 (Shamir shares over GF(256)).
pub type Member = u8;

/// Fixed-point scale: vectors are encoded as round(x · 2²⁴) modulo 2⁶⁴, so a sum is
/// exact to 2⁻²⁴ per member and may span ±2³⁹.
pub const SCALE_BITS: u32 = 24;
const SCALE: f64 = (1u64 << SCALE_BITS) as f64;
/// The largest magnitude a sum may reach.
pub const SUM_BOUND: f64 = (1u64 << (63 - SCALE_BITS)) as f64;

/// Why a step of the protocol failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureAggregationError {
    /// Fewer members than the threshold, a threshold below 2, or more than 255 members.
    #[error("secure aggregation needs 2 ≤ threshold ≤ members ≤ 255; got threshold {threshold} of {members}")]
    Threshold {
        /// The threshold.
        threshold: usize,
        /// The members.
        members: usize,
    },
    /// A member the roster does not hold.
    #[error("member {0} is not in the roster")]
    UnknownMember(Member),
    /// A value too large (or not a number) for the fixed-point encoding.
    #[error("value {0} does not fit the fixed-point encoding (|x| < {bound} per member)", bound = SUM_BOUND)]
    OutOfRange(String),
    /// A sealed share that does not open, or opens to the wrong content.
    #[error("the share from member {0} does not open")]
    BadShare(Member),
    /// A survivor asked to reveal both secrets of one member.
    #[error("member {0} is named both as surviving and as dropped")]
    Contradiction(Member),
    /// Too few shares to rebuild a secret.
    #[error("only {got} shares of member {member}'s secret; {needed} are needed")]
    TooFewShares {
        /// Whose secret.
        member: Member,
        /// Shares given.
        got: usize,
        /// The threshold.
        needed: usize,
    },
    /// Fewer surviving vectors than the threshold.
    #[error("{got} vectors arrived; at least {needed} must, or the round is abandoned")]
    TooFewSurvivors {
        /// Vectors received.
        got: usize,
        /// The threshold.
        needed: usize,
    },
    /// Vectors of different lengths.
    #[error("masked vectors differ in length")]
    Length,
    /// The operating system's random source failed.
    #[error("no randomness available")]
    Randomness,
}

type Result<T> = std::result::Result<T, SecureAggregationError>;

/// A member's public keys, as relayed to every other member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Advertisement {
    /// Who.
    pub member: Member,
    /// Public key for sealing shares.
    pub sealing_key: [u8; 32],
    /// Public key for agreeing masks.
    pub masking_key: [u8; 32],
}

/// A share sealed by one member for another; the coordinator relays it unopened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedShare {
    /// The member that made it.
    pub from: Member,
    /// The member it is for.
    pub to: Member,
    /// ChaCha20-Poly1305 ciphertext of both shares.
    pub ciphertext: Vec<u8>,
}

/// Which secret of a member a revealed share belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    /// The self-mask seed of a member whose vector arrived.
    SelfMask,
    /// The mask key of a member whose vector did not.
    MaskKey,
}

/// A share a survivor reveals in the unmasking step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevealedShare {
    /// Whose secret.
    pub owner: Member,
    /// Which secret.
    pub secret: Secret,
    /// The share, in `sharks`' byte form.
    pub share: Vec<u8>,
}

/// The public state of one run: who takes part, the threshold, and a context that
/// binds masks and seals to one task and round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    members: BTreeMap<Member, Advertisement>,
    threshold: usize,
    context: [u8; 32],
}

fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn random_bytes() -> Result<[u8; 32]> {
    let mut bytes = [0u8; 32];
    SystemRandom::new().fill(&mut bytes).map_err(|_| SecureAggregationError::Randomness)?;
    Ok(bytes)
}

impl Roster {
    /// The roster of `advertisements`, for the run named by `context` (e.g. the task id and round).
    pub fn new(advertisements: &[Advertisement], threshold: usize, context: &[u8]) -> Result<Self> {
        let members: BTreeMap<Member, Advertisement> = advertisements.iter().map(|a| (a.member, *a)).collect();
        if threshold < 2 || threshold > members.len() || members.contains_key(&0) {
            return Err(SecureAggregationError::Threshold { threshold, members: members.len() });
        }
        Ok(Self { members, threshold, context: sha256(&[b"emr-secure-aggregation", context]) })
    }

    /// The members, in order.
    pub fn members(&self) -> impl Iterator<Item = Member> + '_ {
        self.members.keys().copied()
    }

    /// The threshold.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    fn advertisement(&self, member: Member) -> Result<&Advertisement> {
        self.members.get(&member).ok_or(SecureAggregationError::UnknownMember(member))
    }

    /// `length` pseudo-random words from `seed`, for this run.
    fn stream(&self, seed: &[u8], length: usize) -> impl Iterator<Item = u64> {
        let mut rng = ChaCha20Rng::from_seed(sha256(&[&self.context, seed]));
        (0..length).map(move |_| rng.next_u64())
    }

    fn seal_key(&self, agreed: &[u8; 32]) -> ChaCha20Poly1305 {
        ChaCha20Poly1305::new(Key::from_slice(&sha256(&[b"seal", &self.context, agreed])))
    }
}

/// Encodes `x` in fixed point modulo 2⁶⁴.
fn encode(x: f64, members: usize) -> Result<u64> {
    let bound = SUM_BOUND / members as f64;
    if !x.is_finite() || x.abs() >= bound {
        return Err(SecureAggregationError::OutOfRange(x.to_string()));
    }
    Ok((x * SCALE).round() as i64 as u64)
}

fn decode(word: u64) -> f64 {
    word as i64 as f64 / SCALE
}

fn nonce(from: Member, to: Member) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[0] = from;
    bytes[1] = to;
    *Nonce::from_slice(&bytes)
}

/// One member's side of the protocol.
pub struct Participant {
    member: Member,
    sealing: StaticSecret,
    masking: StaticSecret,
    self_seed: [u8; 32],
    /// Shares held for each other member: (of their self-mask seed, of their mask key).
    held: BTreeMap<Member, (Vec<u8>, Vec<u8>)>,
}

impl Participant {
    /// A member with fresh keys and seed, and the advertisement to publish.
    pub fn new(member: Member) -> Result<(Self, Advertisement)> {
        let sealing = StaticSecret::from(random_bytes()?);
        let masking = StaticSecret::from(random_bytes()?);
        let advertisement =
            Advertisement { member, sealing_key: PublicKey::from(&sealing).to_bytes(), masking_key: PublicKey::from(&masking).to_bytes() };
        Ok((Self { member, sealing, masking, self_seed: random_bytes()?, held: BTreeMap::new() }, advertisement))
    }

    /// Splits the self-mask seed and the mask key into one sealed share per member
    /// (this one's own share included, kept like any other).
    pub fn share(&self, roster: &Roster) -> Result<Vec<SealedShare>> {
        roster.advertisement(self.member)?;
        let dealer = Sharks(roster.threshold as u8);
        let seed_shares = dealer.dealer(&self.self_seed);
        let key_shares = dealer.dealer(&self.masking.to_bytes());
        roster
            .members()
            .zip(seed_shares.zip(key_shares))
            .map(|(to, (seed_share, key_share))| {
                let peer = PublicKey::from(roster.advertisement(to)?.sealing_key);
                let agreed = self.sealing.diffie_hellman(&peer).to_bytes();
                let mut plaintext = vec![self.member, to];
                plaintext.extend(Vec::from(&seed_share));
                plaintext.extend(Vec::from(&key_share));
                let aad = [self.member, to];
                let ciphertext = roster
                    .seal_key(&agreed)
                    .encrypt(&nonce(self.member, to), Payload { msg: &plaintext, aad: &aad })
                    .map_err(|_| SecureAggregationError::BadShare(self.member))?;
                Ok(SealedShare { from: self.member, to, ciphertext })
            })
            .collect()
    }

    /// Opens the shares relayed to this member and keeps them.
    pub fn receive(&mut self, roster: &Roster, shares: &[SealedShare]) -> Result<()> {
        for sealed in shares.iter().filter(|s| s.to == self.member) {
            let peer = PublicKey::from(roster.advertisement(sealed.from)?.sealing_key);
            let agreed = self.sealing.diffie_hellman(&peer).to_bytes();
            let aad = [sealed.from, sealed.to];
            let plaintext = roster
                .seal_key(&agreed)
                .decrypt(&nonce(sealed.from, sealed.to), Payload { msg: &sealed.ciphertext, aad: &aad })
                .map_err(|_| SecureAggregationError::BadShare(sealed.from))?;
            // from, to, then two shares of 1 + 32 bytes each.
            if plaintext.len() != 2 + 33 + 33 || plaintext[0] != sealed.from || plaintext[1] != self.member {
                return Err(SecureAggregationError::BadShare(sealed.from));
            }
            self.held.insert(sealed.from, (plaintext[2..35].to_vec(), plaintext[35..].to_vec()));
        }
        Ok(())
    }

    /// This member's vector, encoded and masked.
    pub fn mask(&self, roster: &Roster, values: &[f64]) -> Result<Vec<u64>> {
        let members = roster.members.len();
        let mut masked = values.iter().map(|&x| encode(x, members)).collect::<Result<Vec<u64>>>()?;
        add_stream(&mut masked, roster.stream(&self.self_seed, values.len()), true);
        for other in roster.members().filter(|&m| m != self.member) {
            let agreed = self.masking.diffie_hellman(&PublicKey::from(roster.advertisement(other)?.masking_key)).to_bytes();
            add_stream(&mut masked, roster.stream(&agreed, values.len()), self.member < other);
        }
        Ok(masked)
    }

    /// The shares this member reveals once the coordinator names who survived:
    /// self-mask seeds of survivors, mask keys of dropouts.
    pub fn reveal(&self, survivors: &BTreeSet<Member>, dropped: &BTreeSet<Member>) -> Result<Vec<RevealedShare>> {
        if let Some(both) = survivors.intersection(dropped).next() {
            return Err(SecureAggregationError::Contradiction(*both));
        }
        let mut revealed = Vec::new();
        for (&owner, (seed_share, key_share)) in &self.held {
            if survivors.contains(&owner) {
                revealed.push(RevealedShare { owner, secret: Secret::SelfMask, share: seed_share.clone() });
            } else if dropped.contains(&owner) {
                revealed.push(RevealedShare { owner, secret: Secret::MaskKey, share: key_share.clone() });
            }
        }
        Ok(revealed)
    }
}

/// Adds (or subtracts) a pseudo-random stream to `vector`, modulo 2⁶⁴.
fn add_stream(vector: &mut [u64], stream: impl Iterator<Item = u64>, add: bool) {
    for (v, r) in vector.iter_mut().zip(stream) {
        *v = if add { v.wrapping_add(r) } else { v.wrapping_sub(r) };
    }
}

/// The coordinator's last step: the sum of the survivors' vectors, from their
/// masked vectors and the shares the survivors revealed.
pub fn unmask(roster: &Roster, masked: &BTreeMap<Member, Vec<u64>>, revealed: &[RevealedShare]) -> Result<Vec<f64>> {
    if masked.len() < roster.threshold {
        return Err(SecureAggregationError::TooFewSurvivors { got: masked.len(), needed: roster.threshold });
    }
    let length = masked.values().next().map_or(0, Vec::len);
    if masked.values().any(|v| v.len() != length) {
        return Err(SecureAggregationError::Length);
    }
    let mut sum = vec![0u64; length];
    for (&member, vector) in masked {
        roster.advertisement(member)?;
        add_stream(&mut sum, vector.iter().copied(), true);
    }
    let rebuild = |owner: Member, secret: Secret| -> Result<[u8; 32]> {
        let shares: Vec<Share> = revealed
            .iter()
            .filter(|r| r.owner == owner && r.secret == secret)
            .filter_map(|r| Share::try_from(r.share.as_slice()).ok())
            .collect();
        let recovered = Sharks(roster.threshold as u8).recover(&shares).map_err(|_| SecureAggregationError::TooFewShares {
            member: owner,
            got: shares.len(),
            needed: roster.threshold,
        })?;
        recovered.try_into().map_err(|_| SecureAggregationError::BadShare(owner))
    };
    for &survivor in masked.keys() {
        let seed = rebuild(survivor, Secret::SelfMask)?;
        add_stream(&mut sum, roster.stream(&seed, length), false);
    }
    for dropped in roster.members().filter(|m| !masked.contains_key(m)) {
        let key = StaticSecret::from(rebuild(dropped, Secret::MaskKey)?);
        for &survivor in masked.keys() {
            let agreed = key.diffie_hellman(&PublicKey::from(roster.advertisement(survivor)?.masking_key)).to_bytes();
            // The survivor added +PRG when it sorts before the dropout; take back what it added.
            add_stream(&mut sum, roster.stream(&agreed, length), survivor > dropped);
        }
    }
    Ok(sum.into_iter().map(decode).collect())
}

/// Every member's side of one run held in one process: for simulations, tests and
/// benchmarks of the protocol (a deployment runs each [`Participant`] at its hospital).
pub struct InProcessRound {
    roster: Roster,
    participants: Vec<Participant>,
}

impl InProcessRound {
    /// Members 1 … `members`, threshold ⌈2n/3⌉ (at least 2), keys advertised and
    /// shares exchanged.
    pub fn new(members: usize, context: &[u8]) -> Result<Self> {
        let mut participants = Vec::new();
        let mut advertisements = Vec::new();
        for member in 1..=members {
            let member = Member::try_from(member).map_err(|_| SecureAggregationError::Threshold { threshold: 0, members })?;
            let (participant, advertisement) = Participant::new(member)?;
            participants.push(participant);
            advertisements.push(advertisement);
        }
        let roster = Roster::new(&advertisements, (2 * members).div_ceil(3).max(2), context)?;
        let sealed: Vec<SealedShare> = participants.iter().map(|p| p.share(&roster)).collect::<Result<Vec<_>>>()?.concat();
        for participant in &mut participants {
            participant.receive(&roster, &sealed)?;
        }
        Ok(Self { roster, participants })
    }

    /// The run's roster.
    pub fn roster(&self) -> &Roster {
        &self.roster
    }

    /// Member `index + 1`'s vector, masked.
    pub fn mask(&self, index: usize, values: &[f64]) -> Result<Vec<u64>> {
        let participant = self.participants.get(index).ok_or(SecureAggregationError::UnknownMember((index + 1) as Member))?;
        participant.mask(&self.roster, values)
    }

    /// Every vector masked by its member, keyed by member number.
    pub fn mask_all(&self, vectors: &[Vec<f64>]) -> Result<BTreeMap<Member, Vec<u64>>> {
        vectors.iter().enumerate().map(|(i, v)| Ok((self.participants[i].member, self.mask(i, v)?))).collect()
    }

    /// The shares the survivors reveal once `survivors` are known.
    pub fn reveal(&self, survivors: &BTreeSet<Member>) -> Result<Vec<RevealedShare>> {
        let dropped: BTreeSet<Member> = self.roster.members().filter(|m| !survivors.contains(m)).collect();
        let mut revealed = Vec::new();
        for participant in self.participants.iter().filter(|p| survivors.contains(&p.member)) {
            revealed.extend(participant.reveal(survivors, &dropped)?);
        }
        Ok(revealed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(members: u8, threshold: usize) -> InProcessRound {
        let round = InProcessRound::new(usize::from(members), b"task 1, round 1").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(round.roster().threshold(), threshold);
        round
    }

    fn vectors(members: u8) -> Vec<Vec<f64>> {
        (0..members).map(|m| (0..50).map(|i| (f64::from(m) + 1.0) * (f64::from(i) - 20.0) / 7.0).collect()).collect()
    }

    type MaskedVectors = BTreeMap<Member, Vec<u64>>;

    fn run_round(run: &InProcessRound, inputs: &[Vec<f64>], arrive: &[Member]) -> Result<(Vec<f64>, MaskedVectors)> {
        let masked: MaskedVectors =
            arrive.iter().map(|&m| Ok((m, run.mask(usize::from(m) - 1, &inputs[usize::from(m) - 1])?))).collect::<Result<_>>()?;
        let revealed = run.reveal(&masked.keys().copied().collect())?;
        Ok((unmask(run.roster(), &masked, &revealed)?, masked))
    }

    fn plain_sum(inputs: &[Vec<f64>], members: &[Member]) -> Vec<f64> {
        (0..inputs[0].len()).map(|i| members.iter().map(|&m| inputs[usize::from(m) - 1][i]).sum()).collect()
    }

    fn assert_close(got: &[f64], want: &[f64]) {
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }

    #[test]
    fn the_unmasked_sum_equals_the_plain_sum() {
        let run = setup(5, 4);
        let inputs = vectors(5);
        let (sum, _) = run_round(&run, &inputs, &[1, 2, 3, 4, 5]).unwrap_or_else(|e| panic!("{e}"));
        assert_close(&sum, &plain_sum(&inputs, &[1, 2, 3, 4, 5]));
    }

    #[test]
    fn members_dropping_out_after_sharing_leave_the_sum_of_the_others() {
        let run = setup(6, 4);
        let inputs = vectors(6);
        let (sum, _) = run_round(&run, &inputs, &[1, 2, 4, 5, 6]).unwrap_or_else(|e| panic!("{e}"));
        assert_close(&sum, &plain_sum(&inputs, &[1, 2, 4, 5, 6]));
        let (sum, _) = run_round(&run, &inputs, &[2, 3, 5, 6]).unwrap_or_else(|e| panic!("{e}"));
        assert_close(&sum, &plain_sum(&inputs, &[2, 3, 5, 6]));
        assert_eq!(run_round(&run, &inputs, &[1, 2, 3]).err(), Some(SecureAggregationError::TooFewSurvivors { got: 3, needed: 4 }));
    }

    #[test]
    fn a_masked_vector_reveals_nothing_of_its_input() {
        let run = setup(3, 2);
        let inputs = vectors(3);
        let (_, masked) = run_round(&run, &inputs, &[1, 2, 3]).unwrap_or_else(|e| panic!("{e}"));
        for (member, vector) in &masked {
            let decoded: Vec<f64> = vector.iter().map(|&w| decode(w)).collect();
            let input = &inputs[usize::from(*member) - 1];
            // Masked words look uniform: far from the input, and spread over the whole range.
            assert!(decoded.iter().zip(input).all(|(d, x)| (d - x).abs() > 1.0), "member {member}");
            let large = decoded.iter().filter(|d| d.abs() > SUM_BOUND / 16.0).count();
            assert!(large > 35, "member {member}: {large} of 50 words in the outer range");
        }
    }

    #[test]
    fn a_survivor_never_reveals_both_secrets_of_one_member_and_forged_shares_do_not_open() {
        let run = setup(3, 2);
        let both: BTreeSet<Member> = [2].into();
        assert_eq!(run.participants[0].reveal(&both, &both).err(), Some(SecureAggregationError::Contradiction(2)));
        let mut sealed = run.participants[1].share(&run.roster).unwrap_or_default();
        sealed[0].ciphertext[3] ^= 1;
        let (mut fresh, _) = Participant::new(1).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fresh.receive(&run.roster, &sealed).err(), Some(SecureAggregationError::BadShare(2)));
    }

    #[test]
    fn the_roster_and_encoding_refuse_what_they_cannot_carry() {
        let (_, a) = Participant::new(1).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(Roster::new(&[a], 2, b"x"), Err(SecureAggregationError::Threshold { .. })));
        assert!(matches!(encode(f64::NAN, 3), Err(SecureAggregationError::OutOfRange(_))));
        assert!(matches!(encode(SUM_BOUND, 1), Err(SecureAggregationError::OutOfRange(_))));
        assert_eq!(decode(encode(-2.5, 3).unwrap_or_default()), -2.5);
    }
}
