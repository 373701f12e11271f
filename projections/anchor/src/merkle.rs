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

/// A Merkle tree kept as the hashes of its complete subtrees, level by level:
/// level 0 holds the leaves, level h the roots of the aligned subtrees of 2^h
/// leaves that are complete. Appending a leaf costs O(1) amortized; the root of
/// any prefix, and inclusion and consistency proofs against it, cost O(log n)
/// lookups — where recomputing them from the leaves costs O(n) each, which made
/// anchoring and verification quadratic in the number of tree heads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MerkleTree {
    levels: Vec<Vec<Hash>>,
}

impl MerkleTree {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tree over `leaves` (leaf hashes), in order.
    pub fn from_leaves(leaves: impl IntoIterator<Item = Hash>) -> Self {
        let mut tree = Self::new();
        tree.extend(leaves);
        tree
    }

    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        let mut hash = leaf;
        for level in 0.. {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let n = row.len();
            if n % 2 == 1 {
                return;
            }
            hash = node_hash(&row[n - 2], &row[n - 1]);
        }
    }

    /// Appends leaf hashes in order.
    pub fn extend(&mut self, leaves: impl IntoIterator<Item = Hash>) {
        for leaf in leaves {
            self.push(leaf);
        }
    }

    /// Number of leaves.
    pub fn len(&self) -> u64 {
        self.leaves().len() as u64
    }

    /// True when the tree has no leaf.
    pub fn is_empty(&self) -> bool {
        self.leaves().is_empty()
    }

    /// The leaf hashes, in order.
    pub fn leaves(&self) -> &[Hash] {
        self.levels.first().map_or(&[], Vec::as_slice)
    }

    /// Keeps the first `size` leaves (and the subtrees within them).
    pub fn truncate(&mut self, size: u64) {
        let size = usize::try_from(size).unwrap_or(usize::MAX);
        for (level, row) in self.levels.iter_mut().enumerate() {
            row.truncate(size >> level);
        }
        while self.levels.last().is_some_and(Vec::is_empty) {
            self.levels.pop();
        }
    }

    /// MTH(D[start..end]) for a range the RFC's recursion visits: `start` is a
    /// multiple of the smallest power of two not below `end - start`, so a range
    /// of 2^h leaves is one stored subtree and any other splits once per level.
    fn subtree(&self, start: usize, end: usize) -> Hash {
        let n = end - start;
        if n == 0 {
            return sha256(&[]);
        }
        if n.is_power_of_two() {
            let level = n.trailing_zeros() as usize;
            debug_assert_eq!(start % n, 0, "subtrees are aligned");
            return self.levels[level][start >> level];
        }
        let k = split(n);
        node_hash(&self.subtree(start, start + k), &self.subtree(start + k, end))
    }

    fn size(&self, size: u64) -> Option<usize> {
        usize::try_from(size).ok().filter(|&size| size <= self.leaves().len())
    }

    /// The root (MTH) of the tree over the first `size` leaves; `None` when the
    /// tree is smaller. The empty tree's root is SHA-256 of nothing.
    pub fn root(&self, size: u64) -> Option<Hash> {
        Some(self.subtree(0, self.size(size)?))
    }

    /// The audit path of leaf `index` in the tree over the first `size` leaves
    /// (PATH(m, D[n])), leaf to root.
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Option<Vec<Hash>> {
        let size = self.size(size)?;
        let index = usize::try_from(index).ok().filter(|&index| index < size)?;
        let (mut start, mut end) = (0, size);
        let mut path = Vec::new();
        while end - start > 1 {
            let k = split(end - start);
            if index < start + k {
                path.push(self.subtree(start + k, end));
                end = start + k;
            } else {
                path.push(self.subtree(start, start + k));
                start += k;
            }
        }
        path.reverse();
        Some(path)
    }

    /// The proof that the tree over the first `first` leaves is a prefix of the
    /// tree over the first `size` (PROOF(m, D[n])).
    pub fn consistency_proof(&self, first: u64, size: u64) -> Option<Vec<Hash>> {
        let size = self.size(size)?;
        let first = usize::try_from(first).ok().filter(|&first| first > 0 && first <= size)?;
        let (mut start, mut end, mut m) = (0, size, first);
        let mut complete = true;
        let mut proof = Vec::new();
        while m != end - start {
            let k = split(end - start);
            if m <= k {
                proof.push(self.subtree(start + k, end));
                end = start + k;
            } else {
                proof.push(self.subtree(start, start + k));
                start += k;
                m -= k;
                complete = false;
            }
        }
        if !complete {
            proof.push(self.subtree(start, end));
        }
        proof.reverse();
        Some(proof)
    }
}

/// The root (MTH) of a tree over `leaves` (leaf hashes). The empty tree's root is
/// SHA-256 of nothing.
pub fn root(leaves: &[Hash]) -> Hash {
    MerkleTree::from_leaves(leaves.iter().copied()).subtree(0, leaves.len())
}

/// The audit path of leaf `index` in the tree over `leaves` (PATH(m, D[n])).
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    MerkleTree::from_leaves(leaves.iter().copied()).inclusion_proof(index as u64, leaves.len() as u64)
}

/// The proof that the tree over the first `first` leaves is a prefix of the tree
/// over all `leaves` (PROOF(m, D[n])).
pub fn consistency_proof(leaves: &[Hash], first: usize) -> Option<Vec<Hash>> {
    MerkleTree::from_leaves(leaves.iter().copied()).consistency_proof(first as u64, leaves.len() as u64)
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
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("event {i}").as_bytes())).collect()
    }

    /// RFC 9162's MTH written as the RFC defines it: the oracle for the tree.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => sha256(&[]),
            1 => leaves[0],
            n => node_hash(&reference_root(&leaves[..split(n)]), &reference_root(&leaves[split(n)..])),
        }
    }

    fn reference_path(leaves: &[Hash], m: usize, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if n > 1 {
            let k = split(n);
            if m < k {
                reference_path(&leaves[..k], m, out);
                out.push(reference_root(&leaves[k..]));
            } else {
                reference_path(&leaves[k..], m - k, out);
                out.push(reference_root(&leaves[..k]));
            }
        }
    }

    fn reference_subproof(leaves: &[Hash], m: usize, complete: bool, out: &mut Vec<Hash>) {
        let n = leaves.len();
        if m == n {
            if !complete {
                out.push(reference_root(leaves));
            }
            return;
        }
        let k = split(n);
        if m <= k {
            reference_subproof(&leaves[..k], m, complete, out);
            out.push(reference_root(&leaves[k..]));
        } else {
            reference_subproof(&leaves[k..], m - k, false, out);
            out.push(reference_root(&leaves[..k]));
        }
    }

    #[test]
    fn the_tree_gives_the_rfc_roots_and_proofs_for_every_prefix() {
        let all = leaves(70);
        let tree = MerkleTree::from_leaves(all.iter().copied());
        assert_eq!(tree.len(), 70);
        for n in 0..=70 {
            assert_eq!(tree.root(n as u64), Some(reference_root(&all[..n])), "root of {n}");
            for i in 0..n {
                let mut expected = Vec::new();
                reference_path(&all[..n], i, &mut expected);
                assert_eq!(tree.inclusion_proof(i as u64, n as u64), Some(expected), "path of {i} in {n}");
            }
            for m in 1..=n {
                let mut expected = Vec::new();
                reference_subproof(&all[..n], m, true, &mut expected);
                assert_eq!(tree.consistency_proof(m as u64, n as u64), Some(expected), "proof {m} → {n}");
            }
        }
        assert_eq!(tree.root(71), None, "no root beyond the leaves");
        assert_eq!(tree.inclusion_proof(70, 70), None);
        assert_eq!(tree.consistency_proof(0, 70), None);
        assert_eq!(tree.consistency_proof(71, 70), None);
    }

    #[test]
    fn a_truncated_tree_is_the_tree_of_its_remaining_leaves() {
        let all = leaves(45);
        for size in [0usize, 1, 2, 3, 16, 17, 31, 32, 44, 45] {
            let mut tree = MerkleTree::from_leaves(all.iter().copied());
            tree.truncate(size as u64);
            assert_eq!(tree, MerkleTree::from_leaves(all[..size].iter().copied()), "truncated to {size}");
            tree.extend(all[size..].iter().copied());
            assert_eq!(tree, MerkleTree::from_leaves(all.iter().copied()), "grown back from {size}");
        }
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
