//! The Merkle tree of RFC 9162 (Certificate Transparency 2.0, same hashing as RFC
//! 6962): leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right), the
//! tree over n leaves splits at the largest power of two below n. Inclusion and
//! consistency proofs, and their verification, follow the RFC's algorithms.

use ring::digest::{Context, SHA256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

fn sha256(parts: &[&[u8]]) -> Hash {
    let mut context = Context::new(&SHA256);
    for part in parts {
        context.update(part);
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(context.finish().as_ref());
    hash
}

/// The hash of a leaf's data.
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// The hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

fn split(n: usize) -> usize {
    // Largest power of two strictly below n (n ≥ 2).
    1 << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// The root (MTH) of a tree over `leaves` (leaf hashes). The empty tree's root is
/// SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => sha256(&[]),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(&root(&leaves[..k]), &root(&leaves[k..]))
        }
    }
}

/// The audit path of leaf `index` in the tree over `leaves` (PATH(m, D[n])).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    fn path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if n <= 1 {
            return;
        }
        let k = split(n);
        if m < k {
            path(&leaves[..k], m, out);
            out.push(root(&leaves[k..]));
        } else {
            path(&leaves[k..], m - k, out);
            out.push(root(&leaves[..k]));
        }
    }
    let mut proof = Vec::new();
    path(leaves, index, &mut proof);
    Some(proof)
}

/// The proof that the tree over the first `first` leaves is a prefix of the tree
/// over all `leaves` (PROOF(m, D[n])).
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Option<Vec<Hash>> {
    if first == 0 || first > leaves.len() {
        return None;
    }
    fn subproof(leaves: &[Hash], m: usize, complete: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(root(leaves));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            subproof(&leaves[..k], m, complete, out);
            out.push(root(&leaves[k..]));
        } else {
            subproof(&leaves[k..], m - k, false, out);
            out.push(root(&leaves[..k]));
        }
    }
    let mut proof = Vec::new();
    subproof(leaves, first, true, &mut proof);
    Some(proof)
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], expected_root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && r == *expected_root
}

/// Verifies a consistency proof between two tree heads (RFC 9162 §2.1.4.2).
pub fn verify_consistency(first: u64, second: u64, first_root: &Hash, second_root: &Hash, proof: &[Hash]) -> bool {
    if first == 0 || first > second {
        return false;
    }
    if first == second {
        return proof.is_empty() && first_root == second_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if first.is_power_of_two() {
        path.push(*first_root);
    }
    path.extend_from_slice(proof);
    let Some((start, rest)) = path.split_first() else { return false };
    let (mut fn_, mut sn) = (first - 1, second - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    let (mut fr, mut sr) = (*start, *start);
    for c in rest {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    fr == *first_root && sr == *second_root && sn == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("event {i}").as_bytes())).collect()
    }

    fn hex(hash: &Hash) -> String {
        hash.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn known_answers_match_rfc_6962_hashing() {
        // The empty tree and a one-leaf tree over the empty string, as in the CT test vectors.
        assert_eq!(hex(&root(&[])), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(hex(&leaf_hash(b"")), "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d");
        let two = [leaf_hash(b""), leaf_hash(&[0x00])];
        assert_eq!(root(&two), node_hash(&two[0], &two[1]));
    }

    #[test]
    fn every_leaf_is_provably_included_in_every_tree_size() {
        for n in 1..=40 {
            let all = leaves(n);
            let head = root(&all);
            for i in 0..n {
                let proof = inclusion_proof(&all, i).unwrap();
                assert!(verify_inclusion(i as u64, n as u64, &all[i], &proof, &head), "leaf {i} of {n}");
                let forged = leaf_hash(b"forged");
                assert!(!verify_inclusion(i as u64, n as u64, &forged, &proof, &head), "a forged leaf fails");
                if n > 1 {
                    assert!(!verify_inclusion(((i + 1) % n) as u64, n as u64, &all[i], &proof, &head), "a wrong index fails");
                }
            }
        }
    }

    #[test]
    fn every_smaller_tree_is_provably_a_prefix_of_every_larger_one() {
        for n in 1..=40 {
            let all = leaves(n);
            let second = root(&all);
            for m in 1..=n {
                let first = root(&all[..m]);
                let proof = consistency_proof(&all, m).unwrap();
                assert!(verify_consistency(m as u64, n as u64, &first, &second, &proof), "{m} → {n}");
                if m < n {
                    let rewritten = root(&leaves(m).iter().map(|h| node_hash(h, h)).collect::<Vec<_>>());
                    assert!(!verify_consistency(m as u64, n as u64, &rewritten, &second, &proof), "a rewritten prefix fails {m} → {n}");
                }
            }
        }
    }
}
