//! Pairwise additive masking between agents (Bonawitz et al. 2017, without recovery):
//! agent i sends y_i = x_i + Σ_{j>i} PRG(s_ij) − Σ_{j<i} PRG(s_ij) mod 2^64, so the masks
//! cancel in the sum of every participant's vector and the coordinator learns the total,
//! never a part (docs/secure-aggregation.md).
//!
//! The pairwise seed s_ij is HKDF-SHA256 over the X25519 agreement of i's static secret and
//! j's pinned public key (configured by region IT beside the mTLS trust bundle, so the
//! coordinator cannot substitute a key), with the run's binding (question, participants,
//! cell list) as its info: another participant set or another cell list gives unrelated
//! masks. The PRG is ChaCha20.

use std::collections::BTreeMap;
use std::path::Path;

use hkdf::Hkdf;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use sha2::Sha256;
use x25519_dalek::{PublicKey, StaticSecret};

use norrsken_model::secure::Binding;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureSumError {
    #[error("cannot read the secure-sum key {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("the secure-sum key {path} is not 32 bytes written as 64 hex digits")]
    Malformed { path: String },
    #[error("the public key of region {region} is not 64 hex digits: {value}")]
    BadPeerKey { region: String, value: String },
    #[error("no public key is configured for participant {region}")]
    UnknownPeer { region: String },
    #[error("the participants ({participants}) do not include this region ({region})")]
    NotAParticipant { region: String, participants: String },
}

/// An agent's static X25519 key for secure sums.
#[derive(Clone)]
pub struct SumKey {
    secret: StaticSecret,
}

impl std::fmt::Debug for SumKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SumKey(public {})", self.public_hex())
    }
}

impl SumKey {
    pub fn from_bytes(bytes: [u8; 32]) -> SumKey {
        SumKey { secret: StaticSecret::from(bytes) }
    }

    /// A fresh key from the system's random source.
    pub fn generate() -> Result<SumKey, SecureSumError> {
        let mut bytes = [0u8; 32];
        rustls::crypto::ring::default_provider()
            .secure_random
            .fill(&mut bytes)
            .map_err(|_| SecureSumError::Unreadable { path: "(random source)".into(), reason: "no random source".into() })?;
        Ok(SumKey::from_bytes(bytes))
    }

    /// Reads a key file: 64 hex digits (whitespace ignored).
    pub fn from_file(path: &Path) -> Result<SumKey, SecureSumError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecureSumError::Unreadable { path: path.display().to_string(), reason: e.to_string() })?;
        let bytes: [u8; 32] = hex::decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| SecureSumError::Malformed { path: path.display().to_string() })?;
        Ok(SumKey::from_bytes(bytes))
    }

    /// The secret as a key file's text.
    pub fn to_hex(&self) -> String {
        hex::encode(self.secret.to_bytes())
    }

    pub fn public_hex(&self) -> String {
        hex::encode(PublicKey::from(&self.secret).as_bytes())
    }
}

/// Parses a peer's public key (64 hex digits).
pub fn peer_key(region: &str, value: &str) -> Result<PublicKey, SecureSumError> {
    let bytes: [u8; 32] = hex::decode(value.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| SecureSumError::BadPeerKey { region: region.to_string(), value: value.to_string() })?;
    Ok(PublicKey::from(bytes))
}

/// The mask stream shared by `me` and `other` for a run.
fn stream(key: &SumKey, peer: &PublicKey, me: &str, other: &str, binding: &Binding) -> ChaCha20Rng {
    let shared = key.secret.diffie_hellman(peer);
    let (lo, hi) = if me < other { (me, other) } else { (other, me) };
    let mut info = binding.context();
    info.extend_from_slice(format!("\npair {lo},{hi}").as_bytes());
    let hk = Hkdf::<Sha256>::new(Some(b"norrsken secure sum"), shared.as_bytes());
    let mut seed = [0u8; 32];
    hk.expand(&info, &mut seed).expect("32 bytes is a valid HKDF-SHA256 length");
    ChaCha20Rng::from_seed(seed)
}

/// Masks `values` in place for the run `binding`, as participant `me` with its key and the
/// pinned public keys of the other participants.
pub fn mask(me: &str, key: &SumKey, peers: &BTreeMap<String, PublicKey>, binding: &Binding, values: &mut [u64]) -> Result<(), SecureSumError> {
    if !binding.participants.iter().any(|p| p == me) {
        return Err(SecureSumError::NotAParticipant { region: me.to_string(), participants: binding.participants.join(", ") });
    }
    for other in binding.participants.iter().filter(|p| p.as_str() != me) {
        let peer = peers.get(other).ok_or_else(|| SecureSumError::UnknownPeer { region: other.clone() })?;
        let mut rng = stream(key, peer, me, other, binding);
        let add = me < other.as_str();
        for v in values.iter_mut() {
            let m = rng.next_u64();
            *v = if add { v.wrapping_add(m) } else { v.wrapping_sub(m) };
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::secure::{add_into, signed, word};

    fn federation(n: usize) -> (Vec<String>, Vec<SumKey>, BTreeMap<String, PublicKey>) {
        let regions: Vec<String> = (0..n).map(|i| format!("{}", 22 + i)).collect();
        let keys: Vec<SumKey> = (0..n).map(|i| SumKey::from_bytes([i as u8 + 1; 32])).collect();
        let peers = regions.iter().zip(&keys).map(|(r, k)| (r.clone(), peer_key(r, &k.public_hex()).unwrap())).collect();
        (regions, keys, peers)
    }

    fn binding(question: &str, regions: &[String]) -> Binding {
        Binding { question: question.into(), participants: regions.to_vec(), cells: "c".into(), words: 3 }
    }

    /// Each participant's masked message for its part.
    fn messages(parts: &[[i64; 3]], question: &str, n: usize) -> Vec<Vec<u64>> {
        let (regions, keys, peers) = federation(n);
        let b = binding(question, &regions);
        parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut v: Vec<u64> = p.iter().map(|&x| word(x)).collect();
                mask(&regions[i], &keys[i], &peers, &b, &mut v).unwrap();
                v
            })
            .collect()
    }

    #[test]
    fn masks_cancel_in_the_sum_and_hide_every_part() {
        let parts = [[3, -7, 100], [50, 2, 0], [0, 0, 1], [1, 1, 1]];
        let msgs = messages(&parts, "q1", 4);
        let mut total = vec![0u64; 3];
        for m in &msgs {
            add_into(&mut total, m);
        }
        assert_eq!(total.iter().map(|&w| signed(w)).collect::<Vec<_>>(), vec![54, -4, 102]);
        for (m, p) in msgs.iter().zip(&parts) {
            assert!(m.iter().zip(p).all(|(&w, &x)| w != word(x)), "a part left unmasked");
        }
        // Another question gives unrelated masks.
        assert_ne!(messages(&parts, "q2", 4)[0], msgs[0]);
    }

    /// The coordinator's view (every message) depends on the parts only through their total:
    /// over many runs, the first region's message is distributed alike whether the total of
    /// 100 splits 3 + 97 or 50 + 50 (a chi-square test on the low bits).
    #[test]
    fn the_coordinators_view_is_independent_of_how_a_total_splits() {
        let runs = 4000;
        let histogram = |split: [i64; 2]| {
            let mut h = [0u32; 16];
            for r in 0..runs {
                let msgs = messages(&[[split[0], 0, 0], [split[1], 0, 0]], &format!("run {r}"), 2);
                assert_eq!(signed(msgs[0][0].wrapping_add(msgs[1][0])), 100);
                h[(msgs[0][0] & 15) as usize] += 1;
            }
            h
        };
        let (a, b) = (histogram([3, 97]), histogram([50, 50]));
        // Two-sample chi-square with 15 degrees of freedom; 37.7 is the 0.999 quantile.
        let chi: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 - y as f64).powi(2) / (x + y) as f64).sum();
        assert!(chi < 37.7, "messages depend on the split: chi-square {chi}");
        // Unmasked, the same test tells the splits apart at once.
        assert_ne!(3 & 15, 50 & 15);
    }

    #[test]
    fn a_run_needs_every_peers_key_and_this_region_among_the_participants() {
        let (regions, keys, mut peers) = federation(3);
        let b = binding("q", &regions);
        let mut v = vec![0u64; 3];
        assert!(matches!(mask("99", &keys[0], &peers, &b, &mut v), Err(SecureSumError::NotAParticipant { .. })));
        peers.remove("24");
        assert_eq!(mask("22", &keys[0], &peers, &b, &mut v), Err(SecureSumError::UnknownPeer { region: "24".into() }));
        assert!(peer_key("23", "abc").is_err());
        let k = SumKey::generate().unwrap();
        let dir = std::env::temp_dir().join(format!("norrsken-sumkey-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("k"), k.to_hex()).unwrap();
        assert_eq!(SumKey::from_file(&dir.join("k")).unwrap().public_hex(), k.public_hex());
        std::fs::write(dir.join("bad"), "zz").unwrap();
        assert!(matches!(SumKey::from_file(&dir.join("bad")), Err(SecureSumError::Malformed { .. })));
    }
}
