//! Merkle tree hashes and proofs, exactly as RFC 9162 §2.1 defines them.
//!
//! Every range the RFC's recursion visits is aligned to its largest
//! power-of-two part, so each splits into "perfect" subtrees: a subtree of
//! `2^level` leaves starting at leaf `index << level`. Callers supply those
//! through a `get(level, index)` function (level 0 is a leaf hash), which
//! lets a database serve proofs from a few stored nodes instead of every
//! leaf. [`needed`] tells a caller which nodes a computation will ask for.

use crate::hash::{Hash, node_hash};
use std::collections::HashMap;

/// Largest power of two strictly less than `n` (n ≥ 2).
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// MTH of leaves `[a, b)`, built from perfect subtree hashes.
pub fn range_root(a: u64, b: u64, get: &mut dyn FnMut(u32, u64) -> Hash) -> Hash {
    let n = b - a;
    if n.is_power_of_two() {
        let level = n.trailing_zeros();
        return get(level, a >> level);
    }
    let k = split_point(n);
    let left = range_root(a, a + k, get);
    let right = range_root(a + k, b, get);
    node_hash(&left, &right)
}

/// The audit path for leaf `m` in a tree of `size` leaves (RFC 9162 §2.1.3.1).
pub fn inclusion_proof(m: u64, size: u64, get: &mut dyn FnMut(u32, u64) -> Hash) -> Vec<Hash> {
    assert!(m < size, "leaf index out of range");
    let mut proof = Vec::new();
    path(m, 0, size, get, &mut proof);
    proof
}

fn path(m: u64, a: u64, b: u64, get: &mut dyn FnMut(u32, u64) -> Hash, out: &mut Vec<Hash>) {
    let n = b - a;
    if n == 1 {
        return;
    }
    let k = split_point(n);
    if m < a + k {
        path(m, a, a + k, get, out);
        out.push(range_root(a + k, b, get));
    } else {
        path(m, a + k, b, get, out);
        out.push(range_root(a, a + k, get));
    }
}

/// The consistency proof between tree sizes `m` and `n` (RFC 9162 §2.1.4.1).
pub fn consistency_proof(m: u64, n: u64, get: &mut dyn FnMut(u32, u64) -> Hash) -> Vec<Hash> {
    assert!(0 < m && m <= n, "consistency needs 0 < m <= n");
    let mut proof = Vec::new();
    if m < n {
        subproof(m, 0, n, true, get, &mut proof);
    }
    proof
}

fn subproof(m: u64, a: u64, b: u64, whole: bool, get: &mut dyn FnMut(u32, u64) -> Hash, out: &mut Vec<Hash>) {
    let n = b - a;
    if m == n {
        if !whole {
            out.push(range_root(a, b, get));
        }
        return;
    }
    let k = split_point(n);
    if m <= k {
        subproof(m, a, a + k, whole, get, out);
        out.push(range_root(a + k, b, get));
    } else {
        subproof(m - k, a + k, b, false, get, out);
        out.push(range_root(a, a + k, get));
    }
}

/// The perfect-subtree nodes `compute` will ask for, so a caller can fetch
/// them all at once before computing for real.
pub fn needed(compute: impl FnOnce(&mut dyn FnMut(u32, u64) -> Hash)) -> Vec<(u32, u64)> {
    let mut wanted = Vec::new();
    compute(&mut |level, index| {
        wanted.push((level, index));
        [0u8; 32]
    });
    wanted.sort_unstable();
    wanted.dedup();
    wanted
}

/// A `get` function over a map of fetched nodes; a missing node is a bug in
/// the caller's fetch and yields a hash that can never verify.
pub fn from_map(nodes: &HashMap<(u32, u64), Hash>) -> impl FnMut(u32, u64) -> Hash + '_ {
    move |level, index| nodes.get(&(level, index)).copied().unwrap_or([0xff; 32])
}

/// The perfect subtrees (level ≥ 1) completed when a log grows from `old` to
/// `new` leaves, computed bottom-up. `get` supplies nodes that existed
/// before (leaves are level 0); run it under [`needed`] first to learn which.
pub fn new_nodes(old: u64, new: u64, get: &mut dyn FnMut(u32, u64) -> Hash) -> Vec<(u32, u64, Hash)> {
    let mut made: HashMap<(u32, u64), Hash> = HashMap::new();
    let mut out = Vec::new();
    let mut level = 1u32;
    while level < 64 && (1u64 << level) <= new {
        // Nodes at this level whose last leaf lies in [old, new).
        let first = old >> level;
        let end = new >> level;
        for j in first..end {
            let mut child = |i: u64| made.get(&(level - 1, i)).copied().unwrap_or_else(|| get(level - 1, i));
            let h = node_hash(&child(2 * j), &child(2 * j + 1));
            made.insert((level, j), h);
            out.push((level, j, h));
        }
        level += 1;
    }
    out
}

/// Every perfect subtree of a list of leaf hashes, level by level: the
/// in-memory form used by full verification.
pub struct FullTree {
    levels: Vec<Vec<Hash>>,
}

impl FullTree {
    /// Builds all perfect subtrees over `leaves` (O(n) hashing).
    pub fn new(leaves: Vec<Hash>) -> Self {
        let mut levels = vec![leaves];
        loop {
            let below = levels.last().map(Vec::as_slice).unwrap_or(&[]);
            if below.len() < 2 {
                break;
            }
            let above: Vec<Hash> = below.chunks_exact(2).map(|p| node_hash(&p[0], &p[1])).collect();
            levels.push(above);
        }
        FullTree { levels }
    }

    /// Number of leaves.
    pub fn size(&self) -> u64 {
        self.levels.first().map(|l| l.len() as u64).unwrap_or(0)
    }

    /// The stored perfect node (level, index).
    pub fn node(&self, level: u32, index: u64) -> Hash {
        self.levels.get(level as usize).and_then(|l| l.get(usize::try_from(index).ok()?)).copied().unwrap_or([0xff; 32])
    }

    /// The root of the first `size` leaves (the empty tree hashes to SHA-256("")).
    pub fn root(&self, size: u64) -> Hash {
        if size == 0 {
            return crate::hash::sha256(b"");
        }
        range_root(0, size, &mut |l, i| self.node(l, i))
    }

    /// All perfect nodes at levels ≥ 1, for persisting.
    pub fn interior_nodes(&self) -> impl Iterator<Item = (u32, u64, Hash)> + '_ {
        self.levels
            .iter()
            .enumerate()
            .skip(1)
            .flat_map(|(level, hashes)| hashes.iter().enumerate().map(move |(i, h)| (level as u32, i as u64, *h)))
    }
}

/// Verifies an inclusion proof (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(leaf: &Hash, index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    s_n == 0 && &r == root
}

/// Verifies a consistency proof between (m, root_m) and (n, root_n)
/// (RFC 9162 §2.1.4.2).
pub fn verify_consistency(m: u64, n: u64, root_m: &Hash, root_n: &Hash, proof: &[Hash]) -> bool {
    if m == 0 || m > n {
        return false;
    }
    if m == n {
        return proof.is_empty() && root_m == root_n;
    }
    if proof.is_empty() {
        return false;
    }
    let mut proof = proof.to_vec();
    if m.is_power_of_two() {
        proof.insert(0, *root_m);
    }
    let Some((first, rest)) = proof.split_first() else { return false };
    let (mut f_n, mut s_n) = (m - 1, n - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s_n == 0 {
            return false;
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f_n & 1 == 0 {
                while f_n & 1 == 0 && f_n != 0 {
                    f_n >>= 1;
                    s_n >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    &fr == root_m && &sr == root_n && s_n == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::leaf_hash;
    use proptest::prelude::*;

    /// MTH straight from the RFC's recursive definition, over leaf data.
    fn naive_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => crate::hash::sha256(b""),
            1 => leaves[0],
            n => {
                let k = split_point(n as u64) as usize;
                node_hash(&naive_root(&leaves[..k]), &naive_root(&leaves[k..]))
            }
        }
    }

    fn naive_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
        let n = leaves.len();
        if n <= 1 {
            return vec![];
        }
        let k = split_point(n as u64) as usize;
        if m < k {
            let mut p = naive_path(m, &leaves[..k]);
            p.push(naive_root(&leaves[k..]));
            p
        } else {
            let mut p = naive_path(m - k, &leaves[k..]);
            p.push(naive_root(&leaves[..k]));
            p
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n).map(|i| leaf_hash(format!("entry {i}").as_bytes())).collect()
    }

    /// The reference tree of RFC 6962 test suites (certificate-transparency
    /// and transparency-dev): eight leaves and the root of each prefix.
    #[test]
    fn matches_the_published_reference_roots() {
        let data: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let roots = [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
            "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
            "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
        ];
        let tree = FullTree::new(data.iter().map(|d| leaf_hash(d)).collect());
        for (i, want) in roots.iter().enumerate() {
            assert_eq!(hex::encode(tree.root(i as u64 + 1)), *want, "root of {} leaves", i + 1);
        }
        assert_eq!(
            hex::encode(tree.root(0)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "the empty tree is SHA-256 of nothing"
        );
    }

    #[test]
    fn tampered_proofs_fail() {
        let l = leaves(13);
        let tree = FullTree::new(l.clone());
        let root = tree.root(13);
        let mut proof = inclusion_proof(5, 13, &mut |a, b| tree.node(a, b));
        assert!(verify_inclusion(&l[5], 5, 13, &proof, &root));
        assert!(!verify_inclusion(&l[6], 5, 13, &proof, &root), "wrong leaf");
        assert!(!verify_inclusion(&l[5], 6, 13, &proof, &root), "wrong index");
        let bigger = FullTree::new(leaves(14));
        assert!(!verify_inclusion(&l[5], 5, 14, &proof, &bigger.root(14)), "proof for another tree size");
        proof.pop();
        assert!(!verify_inclusion(&l[5], 5, 13, &proof, &root), "cut proof");
        let c = consistency_proof(7, 13, &mut |a, b| tree.node(a, b));
        assert!(verify_consistency(7, 13, &tree.root(7), &root, &c));
        assert!(!verify_consistency(7, 13, &tree.root(6), &root, &c));
        let forked = FullTree::new([&l[..3], &leaves(20)[15..]].concat());
        assert!(!verify_consistency(7, 13, &forked.root(7), &root, &c), "a rewritten prefix is inconsistent");
    }

    proptest! {
        #[test]
        fn roots_and_paths_match_naive_recomputation(n in 1usize..300, seed in 0usize..1000) {
            let l = leaves(n);
            let tree = FullTree::new(l.clone());
            prop_assert_eq!(tree.root(n as u64), naive_root(&l));
            let m = seed % n;
            let proof = inclusion_proof(m as u64, n as u64, &mut |a, b| tree.node(a, b));
            prop_assert_eq!(&proof, &naive_path(m, &l));
            prop_assert!(verify_inclusion(&l[m], m as u64, n as u64, &proof, &naive_root(&l)));
        }

        #[test]
        fn consistency_proofs_verify_for_every_prefix(n in 1u64..200, seed in 0u64..1000) {
            let l = leaves(n as usize);
            let tree = FullTree::new(l);
            let m = seed % n + 1;
            let proof = consistency_proof(m, n, &mut |a, b| tree.node(a, b));
            prop_assert!(verify_consistency(m, n, &tree.root(m), &tree.root(n), &proof));
            if m < n {
                prop_assert!(!verify_consistency(m, n, &tree.root(m), &tree.root(n - 1), &proof));
            }
        }

        #[test]
        fn incremental_nodes_equal_a_full_build(old in 0u64..200, grow in 0u64..200) {
            let new = old + grow;
            let l = leaves(new as usize);
            let full = FullTree::new(l.clone());
            let before = FullTree::new(l[..old as usize].to_vec());
            // Existing nodes come from the smaller tree, new leaves from the list.
            let mut get = |level: u32, i: u64| if level == 0 { l[i as usize] } else { before.node(level, i) };
            for (level, i, h) in new_nodes(old, new, &mut get) {
                prop_assert_eq!(h, full.node(level, i));
                prop_assert!(((i + 1) << level) > old);
            }
            let all: Vec<_> = full.interior_nodes().filter(|(level, i, _)| ((i + 1) << level) > old).collect();
            prop_assert_eq!(all.len(), new_nodes(old, new, &mut get).len());
        }

        #[test]
        fn needed_nodes_are_enough(n in 2u64..500, seed in 0u64..1000) {
            let tree = FullTree::new(leaves(n as usize));
            let m = seed % n;
            let wanted = needed(|get| { inclusion_proof(m, n, get); });
            prop_assert!(wanted.len() <= 2 * 64);
            let map: HashMap<_, _> = wanted.iter().map(|&(l, i)| ((l, i), tree.node(l, i))).collect();
            let from_db = inclusion_proof(m, n, &mut from_map(&map));
            prop_assert_eq!(from_db, inclusion_proof(m, n, &mut |a, b| tree.node(a, b)));
        }
    }
}
