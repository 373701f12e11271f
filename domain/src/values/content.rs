//! Content addressing of attachments: the IPFS content id of the encrypted blob,
//! the plaintext SHA-256 and the MIME type.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::InvalidValue;

/// An IPFS content identifier: CIDv0 (`Qm…`, base58btc, 46 characters) or CIDv1 in
/// its default base32 text form (`b…`). Only the text shape is checked here; the
/// blob store adapter decodes it fully.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^(Qm[1-9A-HJ-NP-Za-km-z]{44}|b[a-z2-7]{9,127})$"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentId(String);

impl ContentId {
    /// Parses a CID's text form.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        let invalid = InvalidValue::new("content id", "a CIDv0 (Qm…) or base32 CIDv1 (b…)");
        let v0 = value.len() == 46 && value.starts_with("Qm") && value.chars().all(|c| BASE58.contains(c));
        let v1 = (10..=128).contains(&value.len())
            && value.starts_with('b')
            && value[1..].bytes().all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b));
        if v0 || v1 { Ok(Self(value.to_owned())) } else { Err(invalid) }
    }

    /// The CID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ContentId {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<ContentId> for String {
    fn from(value: ContentId) -> Self {
        value.0
    }
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, format = "hex"))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Digest([u8; 32]);

impl Sha256Digest {
    /// Wraps raw digest bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The SHA-256 of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
        Self(digest)
    }

    /// Parses 64 hex digits (either case).
    pub fn parse_hex(value: &str) -> Result<Self, InvalidValue> {
        let invalid = InvalidValue::new("sha256", "64 hexadecimal digits");
        if value.len() != 64 {
            return Err(invalid);
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in value.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(pair).map_err(|_| invalid.clone())?;
            bytes[i] = u8::from_str_radix(hex, 16).map_err(|_| invalid.clone())?;
        }
        Ok(Self(bytes))
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256({self})")
    }
}

impl TryFrom<String> for Sha256Digest {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_hex(&value)
    }
}

impl From<Sha256Digest> for String {
    fn from(value: Sha256Digest) -> Self {
        value.to_string()
    }
}

/// A MIME type such as `application/dicom` or `image/png` (RFC 6838 shape, no parameters).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^[A-Za-z0-9!#$&^_.+-]{1,127}/[A-Za-z0-9!#$&^_.+-]{1,127}$", example = "application/dicom"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MimeType(String);

impl MimeType {
    /// Parses `type/subtype`, lowercased.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let invalid = InvalidValue::new("mime type", "type/subtype, e.g. application/dicom");
        let restricted =
            |s: &str| !s.is_empty() && s.len() <= 127 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b));
        match value.split_once('/') {
            Some((kind, sub)) if restricted(kind) && restricted(sub) => Ok(Self(value.to_ascii_lowercase())),
            _ => Err(invalid),
        }
    }

    /// The MIME type text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for MimeType {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MimeType> for String {
    fn from(value: MimeType) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_in_both_text_versions_are_accepted() {
        assert!(ContentId::parse("QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG").is_ok());
        assert!(ContentId::parse("bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi").is_ok());
        assert!(ContentId::parse("Qm0000").is_err());
        assert!(ContentId::parse("bafy ONE").is_err());
    }

    #[test]
    fn sha256_of_bytes_is_the_standard_digest() {
        // FIPS 180-2, appendix B.1: SHA-256("abc").
        assert_eq!(Sha256Digest::of(b"abc").to_string(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn sha256_round_trips_through_hex() {
        let hex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(Sha256Digest::parse_hex(hex).unwrap().to_string(), hex);
        assert!(Sha256Digest::parse_hex("zz").is_err());
        assert!(Sha256Digest::parse_hex(&"g".repeat(64)).is_err());
    }

    #[test]
    fn mime_types_need_a_type_and_a_subtype() {
        assert_eq!(MimeType::parse("Application/DICOM").unwrap().as_str(), "application/dicom");
        assert!(MimeType::parse("dicom").is_err());
        assert!(MimeType::parse("text/html; charset=utf-8").is_err());
    }
}

/// The non-identifying metadata of a DICOM attachment, kept in the clear so
/// imaging can be found and counted without opening a blob.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DicomSummary {
    /// Modality code (`CT`, `MR`, `CR`, …).
    pub modality: Option<String>,
    /// Study date.
    pub study_date: Option<chrono::NaiveDate>,
    /// Body part examined (`CHEST`, …).
    pub body_part: Option<String>,
    /// Image rows.
    pub rows: Option<u32>,
    /// Image columns.
    pub columns: Option<u32>,
}
