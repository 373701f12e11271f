//! The UnixFS file DAG of `ipfs add`, built streaming.

use cid::Cid;
use multihash::Multihash;

use crate::dagpb::{PbLink, pb_node, unixfs_file};

/// Kubo's `size-262144` chunker.
pub const CHUNK_SIZE: usize = 262_144;
/// Kubo's balanced layout: at most this many links per node.
pub const MAX_LINKS: usize = 174;

const RAW: u64 = 0x55;
const DAG_PB: u64 = 0x70;
const SHA2_256: u64 = 0x12;

/// Which `ipfs add` the CIDs must match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `--cid-version=1 --raw-leaves --chunker=size-262144`.
    V1RawLeaves,
    /// The default `ipfs add`: CIDv0, dag-pb leaves.
    V0,
}

fn sha256(bytes: &[u8]) -> Multihash<64> {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    // A 32-byte digest always fits the 64-byte multihash.
    Multihash::wrap(SHA2_256, digest.as_ref()).unwrap_or_default()
}

#[derive(Debug, Clone)]
struct Link {
    cid: Cid,
    /// Bytes of the block and everything under it (the dag-pb `Tsize`).
    tsize: u64,
    /// File bytes under it (the UnixFS `blocksizes` entry).
    filesize: u64,
}

/// Builds the DAG of one file from its bytes, handing each block to `sink`
/// (CID, encoded block) as soon as it is final.
pub struct DagBuilder<S: FnMut(&Cid, &[u8])> {
    layout: Layout,
    sink: S,
    chunk: Vec<u8>,
    /// `levels[0]` holds leaf links, `levels[n]` links to depth-n nodes.
    levels: Vec<Vec<Link>>,
}

impl<S: FnMut(&Cid, &[u8])> DagBuilder<S> {
    /// A builder for `layout` writing blocks to `sink`.
    pub fn new(layout: Layout, sink: S) -> Self {
        Self { layout, sink, chunk: Vec::with_capacity(CHUNK_SIZE), levels: vec![Vec::new()] }
    }

    fn block(&mut self, codec: u64, bytes: &[u8]) -> Cid {
        let hash = sha256(bytes);
        let cid = match self.layout {
            Layout::V0 => Cid::new_v0(hash).unwrap_or_else(|_| Cid::new_v1(codec, hash)),
            Layout::V1RawLeaves => Cid::new_v1(codec, hash),
        };
        (self.sink)(&cid, bytes);
        cid
    }

    fn leaf(&mut self, data: &[u8]) -> Link {
        match self.layout {
            Layout::V1RawLeaves => {
                let cid = self.block(RAW, data);
                Link { cid, tsize: data.len() as u64, filesize: data.len() as u64 }
            }
            Layout::V0 => {
                let unixfs = unixfs_file((!data.is_empty()).then_some(data), data.len() as u64, &[]);
                let node = pb_node(&[], &unixfs);
                let cid = self.block(DAG_PB, &node);
                Link { cid, tsize: node.len() as u64, filesize: data.len() as u64 }
            }
        }
    }

    fn node(&mut self, children: &[Link]) -> Link {
        let filesize = children.iter().map(|c| c.filesize).sum();
        let blocksizes: Vec<u64> = children.iter().map(|c| c.filesize).collect();
        let hashes: Vec<Vec<u8>> = children.iter().map(|c| c.cid.to_bytes()).collect();
        let links: Vec<PbLink<'_>> = children.iter().zip(&hashes).map(|(c, hash)| PbLink { hash, tsize: c.tsize }).collect();
        let encoded = pb_node(&links, &unixfs_file(None, filesize, &blocksizes));
        let tsize = encoded.len() as u64 + children.iter().map(|c| c.tsize).sum::<u64>();
        let cid = self.block(DAG_PB, &encoded);
        Link { cid, tsize, filesize }
    }

    /// Adds a link at `level`, first folding that level into a node one level up
    /// when it is full.
    fn push(&mut self, level: usize, link: Link) {
        if self.levels[level].len() == MAX_LINKS {
            let full = std::mem::take(&mut self.levels[level]);
            let parent = self.node(&full);
            if self.levels.len() == level + 1 {
                self.levels.push(Vec::new());
            }
            self.push(level + 1, parent);
        }
        self.levels[level].push(link);
    }

    fn flush_chunk(&mut self) {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK_SIZE));
        let leaf = self.leaf(&chunk);
        self.push(0, leaf);
    }

    /// Feeds the next bytes of the file.
    pub fn write(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let take = (CHUNK_SIZE - self.chunk.len()).min(bytes.len());
            self.chunk.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.chunk.len() == CHUNK_SIZE {
                self.flush_chunk();
            }
        }
    }

    /// Ends the file and returns its root CID.
    pub fn finish(mut self) -> Cid {
        let only_leaf_so_far = self.levels.len() == 1 && self.levels[0].is_empty();
        if !self.chunk.is_empty() || only_leaf_so_far {
            self.flush_chunk();
        }
        if self.levels.len() == 1 && self.levels[0].len() == 1 {
            // One chunk: the leaf is the file.
            return self.levels[0][0].cid;
        }
        let mut level = 0;
        loop {
            let children = std::mem::take(&mut self.levels[level]);
            let node = self.node(&children);
            let higher = self.levels.iter().skip(level + 1).any(|links| !links.is_empty());
            if !higher {
                return node.cid;
            }
            self.push(level + 1, node);
            level += 1;
        }
    }
}

/// The CID `ipfs add` (with `layout`) gives `bytes`.
pub fn cid_of(layout: Layout, bytes: &[u8]) -> Cid {
    let mut builder = DagBuilder::new(layout, |_: &Cid, _: &[u8]| {});
    builder.write(bytes);
    builder.finish()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_chunk_files_match_kubo() {
        let hello = b"hello world\n";
        assert_eq!(cid_of(Layout::V1RawLeaves, hello).to_string(), "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4");
        assert_eq!(cid_of(Layout::V0, hello).to_string(), "QmT78zSuBmuS4z925WZfrqQ1qHaJ56DQaTfyMUF7F8ff5o");
    }

    #[test]
    fn the_empty_file_matches_kubo() {
        assert_eq!(cid_of(Layout::V1RawLeaves, b"").to_string(), "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku");
        assert_eq!(cid_of(Layout::V0, b"").to_string(), "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH");
    }

    fn blocks_of(layout: Layout, bytes: &[u8]) -> (Cid, Vec<(Cid, Vec<u8>)>) {
        let mut blocks = Vec::new();
        let mut builder = DagBuilder::new(layout, |cid: &Cid, block: &[u8]| blocks.push((*cid, block.to_vec())));
        for piece in bytes.chunks(100_003) {
            builder.write(piece);
        }
        let root = builder.finish();
        (root, blocks)
    }

    #[test]
    fn a_two_chunk_file_is_one_dag_pb_node_over_two_raw_leaves() {
        let bytes: Vec<u8> = (0..CHUNK_SIZE + 10).map(|i| (i % 251) as u8).collect();
        let (root, blocks) = blocks_of(Layout::V1RawLeaves, &bytes);
        assert_eq!(blocks.len(), 3);
        assert_eq!(root.codec(), DAG_PB);
        assert_eq!(blocks.iter().filter(|(cid, _)| cid.codec() == RAW).count(), 2);
        assert_eq!(blocks.last().unwrap().0, root, "the root is the last block");
        assert!(root.to_string().starts_with("bafybei"), "{root}");
    }

    #[test]
    fn more_than_174_chunks_grow_a_second_level() {
        let chunks = MAX_LINKS + 1;
        let bytes = vec![7_u8; CHUNK_SIZE * chunks];
        let (root, blocks) = blocks_of(Layout::V1RawLeaves, &bytes);
        // Identical chunks share one raw block CID, but each is still yielded.
        let nodes = blocks.iter().filter(|(cid, _)| cid.codec() == DAG_PB).count();
        assert_eq!(nodes, 3, "one full depth-1 node, one depth-1 node with the last leaf, one root");
        assert_eq!(blocks.len(), chunks + 3);
        assert_eq!(root, blocks.last().unwrap().0);
    }

    #[test]
    fn how_bytes_are_fed_does_not_change_the_cid() {
        let bytes: Vec<u8> = (0..CHUNK_SIZE * 3 + 5).map(|i| (i * 7 % 256) as u8).collect();
        let mut builder = DagBuilder::new(Layout::V1RawLeaves, |_: &Cid, _: &[u8]| {});
        for piece in bytes.chunks(4096) {
            builder.write(piece);
        }
        assert_eq!(builder.finish(), cid_of(Layout::V1RawLeaves, &bytes));
    }
}

#[cfg(test)]
mod reference {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Bytes `(i * 31 + 7) % 251`: deterministic and not repetitive at chunk scale.
    fn pattern(size: usize) -> Vec<u8> {
        (0..size).map(|i| ((i * 31 + 7) % 251) as u8).collect()
    }

    /// CIDs computed by the reference JavaScript importer (npm
    /// `ipfs-unixfs-importer` 15, the importer of the JS IPFS node) with Kubo's
    /// options: fixed 262144-byte chunks, balanced layout of 174 links; CIDv1 with
    /// raw leaves, and CIDv0 with dag-pb file leaves.
    const VECTORS: [(usize, &str, &str); 6] = [
        (0, "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku", "QmbFMke1KXqnYyBBWxB74N4c5SBnJMVAiMNRcGu6x1AwQH"),
        (12, "bafkreic2jlstkojptt46r442ngvkviuq76cljvg6ji47tw5neyw7k7afy4", "QmYSouWJ2Qy2yJQSzMoSBpfXjDcf5fZJkrZGhNNNq1CWVu"),
        (262_144, "bafkreieiuj5mzeuqor24l4lmo2yumm6665yv4gq7ozzp2nrfmqrjyboosy", "QmNjsPT1urL55WXngMVgvZrn2apSux229uFBoAgmKTtjAd"),
        (262_154, "bafybeihfss24fncfzfv3mrpfczdlgr2pbliqqcjx5xurdwtgx5re24hglq", "QmagUJLm5HuGkDoGML3nxDLDsH9ooJ5Zu7vAqzAhHCqYVi"),
        (1_048_576, "bafybeihui4agg3d5vku5qnjg6luskvvue7twfha5k4uw4mowbowx4i6uke", "QmfP6GjfZnzRi5Lj1AYF4HurNVhebyeRvCdDnd8VVeCP32"),
        (
            262_144 * 175 + 3,
            "bafybeid6yzjqj6eoc7s2h7voy5wsugukpzzfmdkulgxjpb5hneouc7ow3y",
            "QmZDpvUekaNfn7hZRTPBXQKog77mTH1ukWhXyo3rGNNNTK",
        ),
    ];

    #[test]
    fn empty_one_chunk_multi_chunk_and_two_level_files_match_the_reference_importer() {
        for (size, v1, v0) in VECTORS {
            let bytes = pattern(size);
            assert_eq!(cid_of(Layout::V1RawLeaves, &bytes).to_string(), v1, "CIDv1 of {size} bytes");
            assert_eq!(cid_of(Layout::V0, &bytes).to_string(), v0, "CIDv0 of {size} bytes");
        }
    }
}
