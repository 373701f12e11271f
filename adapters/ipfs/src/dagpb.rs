//! The two protobuf messages of a UnixFS file node, encoded the way go-ipfs
//! writes them: `PBNode` with its links *before* its data (the dag-pb canonical
//! order, which a derived encoder sorting by tag would not produce), every link
//! with an explicit empty name, and UnixFS `blocksizes` unpacked (proto2).

use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// A link to a child block.
pub(crate) struct PbLink<'a> {
    pub(crate) hash: &'a [u8],
    pub(crate) tsize: u64,
}

fn put_bytes(field: u32, bytes: &[u8], out: &mut Vec<u8>) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_varint(field: u32, value: u64, out: &mut Vec<u8>) {
    encode_key(field, WireType::Varint, out);
    encode_varint(value, out);
}

/// `PBNode { Links = 2; Data = 1 }`, links first.
pub(crate) fn pb_node(links: &[PbLink<'_>], data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + links.len() * 48 + 8);
    for link in links {
        let mut encoded = Vec::with_capacity(link.hash.len() + 16);
        put_bytes(1, link.hash, &mut encoded);
        put_bytes(2, b"", &mut encoded);
        put_varint(3, link.tsize, &mut encoded);
        put_bytes(2, &encoded, &mut out);
    }
    put_bytes(1, data, &mut out);
    out
}

/// UnixFS `Data { Type = 1; Data = 2; filesize = 3; repeated blocksizes = 4 }`
/// for a file (`Type = 2`).
pub(crate) fn unixfs_file(data: Option<&[u8]>, filesize: u64, blocksizes: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.map_or(0, <[u8]>::len) + 8 + blocksizes.len() * 4);
    put_varint(1, 2, &mut out);
    if let Some(data) = data {
        put_bytes(2, data, &mut out);
    }
    put_varint(3, filesize, &mut out);
    for size in blocksizes {
        put_varint(4, *size, &mut out);
    }
    debug_assert!(out.len() >= encoded_len_varint(2));
    out
}
