//! The values an account is made of. Passwords themselves never reach the
//! domain: the application layer checks them against [`PasswordPolicy`] and
//! hands the aggregate only their argon2id hash.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::{InvalidValue, ShortText};

/// A login name: 3–64 lowercase ASCII letters, digits, `-` or `_`, folded to
/// lower case so that `Dr_Li` and `dr_li` are one account. It doubles as the id
/// of the [`super::UsernameClaim`] that keeps it unique, so it must be a valid
/// log subject token (no dots, spaces or wildcards).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^[A-Za-z0-9_-]{3,64}$", example = "dr_li"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Username(String);

impl Username {
    /// Parses and folds a login name.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        let folded = value.to_ascii_lowercase();
        if !(3..=64).contains(&folded.len()) {
            return Err(InvalidValue::new("username", "3 to 64 characters"));
        }
        if !folded.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_') {
            return Err(InvalidValue::new("username", "only ASCII letters, digits, '-' and '_'"));
        }
        Ok(Self(folded))
    }

    /// The folded name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Username {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Username> for String {
    fn from(value: Username) -> Self {
        value.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A practitioner's licence number as issued by their regulator: 4–32 ASCII
/// letters, digits or `-`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(value_type = String, pattern = r"^[A-Za-z0-9-]{4,32}$", example = "LIC-1001"))]
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct LicenceNumber(String);

impl LicenceNumber {
    /// Parses a licence number.
    pub fn parse(value: &str) -> Result<Self, InvalidValue> {
        if !(4..=32).contains(&value.len()) || !value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return Err(InvalidValue::new("licence_number", "4 to 32 ASCII letters, digits or '-'"));
        }
        Ok(Self(value.to_owned()))
    }

    /// The number as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for LicenceNumber {
    type Error = InvalidValue;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<LicenceNumber> for String {
    fn from(value: LicenceNumber) -> Self {
        value.0
    }
}

/// What the seed's Users table keeps about a physician or nurse.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PractitionerProfile {
    /// Full name as licensed.
    pub full_name: ShortText,
    /// Licence number.
    pub licence_number: LicenceNumber,
    /// Department (e.g. cardiology).
    pub department: ShortText,
    /// Specialization.
    pub specialization: ShortText,
}

macro_rules! secret_text {
    ($(#[$doc:meta])* $name:ident, $field:literal, $check:expr, $expected:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Accepts the encoded form.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidValue> {
                let value = value.into();
                let check: fn(&str) -> bool = $check;
                if check(&value) { Ok(Self(value)) } else { Err(InvalidValue::new($field, $expected)) }
            }

            /// The encoded form, for the code that verifies against it.
            pub fn expose(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidValue;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(…)"))
            }
        }
    };
}

secret_text!(
    /// An argon2id hash in PHC string form (`$argon2id$v=19$m=…`).
    PasswordHash,
    "password_hash",
    |v| v.starts_with("$argon2id$") && v.len() <= 256 && v.is_ascii(),
    "an argon2id PHC string"
);

secret_text!(
    /// A TOTP shared secret (RFC 4648 base32, at least 128 bits).
    TotpSecret,
    "totp_secret",
    |v| (26..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b)),
    "unpadded base32 of at least 128 bits"
);

/// Why a password does not meet the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRejected {
    /// Fewer than [`PasswordPolicy::MIN_CHARS`] characters.
    #[error("passwords must have at least 12 characters")]
    TooShort,
    /// More than [`PasswordPolicy::MAX_CHARS`] characters.
    #[error("passwords must have at most 128 characters")]
    TooLong,
    /// Fewer than three of: lower case, upper case, digit, other.
    #[error("passwords must mix at least three of: lower case, upper case, digits, symbols")]
    TooSimple,
    /// The password contains the username.
    #[error("passwords must not contain the username")]
    ContainsUsername,
}

/// The complexity policy (NIST SP 800-63B length first, plus the seed's mix rule).
pub struct PasswordPolicy;

impl PasswordPolicy {
    /// Shortest accepted password.
    pub const MIN_CHARS: usize = 12;
    /// Longest accepted password (argon2 hashes anything, but requests stay small).
    pub const MAX_CHARS: usize = 128;

    /// Checks `password` for `username`.
    pub fn check(password: &str, username: &Username) -> Result<(), PasswordRejected> {
        let chars = password.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(PasswordRejected::TooShort);
        }
        if chars > Self::MAX_CHARS {
            return Err(PasswordRejected::TooLong);
        }
        let classes = [
            password.chars().any(|c| c.is_lowercase()),
            password.chars().any(|c| c.is_uppercase()),
            password.chars().any(|c| c.is_ascii_digit()),
            password.chars().any(|c| !c.is_alphanumeric()),
        ];
        if classes.iter().filter(|present| **present).count() < 3 {
            return Err(PasswordRejected::TooSimple);
        }
        if password.to_lowercase().contains(username.as_str()) {
            return Err(PasswordRejected::ContainsUsername);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_to_lower_case_and_refuse_subject_characters() {
        assert_eq!(Username::parse("Dr_Li").map(|u| u.0), Ok("dr_li".to_owned()));
        for bad in ["ab", "a.b", "a b", "a*c", "x>y", &"x".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn the_password_policy_wants_length_mix_and_no_username() {
        let user = Username::parse("dr_li").unwrap();
        assert_eq!(PasswordPolicy::check("Short1!", &user), Err(PasswordRejected::TooShort));
        assert_eq!(PasswordPolicy::check("alllowercaseletters", &user), Err(PasswordRejected::TooSimple));
        assert_eq!(PasswordPolicy::check("Xx1-dr_li-2024", &user), Err(PasswordRejected::ContainsUsername));
        assert_eq!(PasswordPolicy::check(&"Aa1!".repeat(40), &user), Err(PasswordRejected::TooLong));
        assert_eq!(PasswordPolicy::check("Correct-Horse-Battery-9", &user), Ok(()));
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let secret = TotpSecret::parse("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP").unwrap();
        assert_eq!(format!("{secret:?}"), "TotpSecret(…)");
        assert!(PasswordHash::parse("plain").is_err());
    }
}
