//! Single-use recovery codes for a lost second factor.
//!
//! Ten codes of 80 random bits each, shown once as `xxxx-xxxx-xxxx-xxxx`
//! (an alphabet without look-alike characters) and stored as SHA-256:
//! at 80 bits a fast hash is enough, as it is for session tokens.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Crockford-style base32: no I, L, O or U to misread.
const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";

/// How many codes an enrollment gets.
pub const COUNT: usize = 10;

/// Fresh codes, as shown to the user once.
pub fn generate() -> Result<Vec<String>, getrandom::Error> {
    (0..COUNT)
        .map(|_| {
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes)?;
            // 80 bits as 16 base32 characters, grouped by four.
            let mut bits: u128 = 0;
            for b in bytes {
                bits = (bits << 8) | u128::from(b);
            }
            let chars: Vec<u8> = (0..16).map(|i| ALPHABET[((bits >> (5 * (15 - i))) & 31) as usize]).collect();
            Ok(chars.chunks(4).map(|c| String::from_utf8_lossy(c).into_owned()).collect::<Vec<_>>().join("-"))
        })
        .collect()
}

/// What is stored for a code: SHA-256 of its normalized form.
pub fn hash(code: &str) -> String {
    let normalized: String =
        code.chars().filter(|c| !c.is_whitespace() && *c != '-').flat_map(char::to_lowercase).collect();
    hex::encode(Sha256::digest(normalized.as_bytes()))
}

/// The position of the stored hash that `code` matches, compared in
/// constant time; the caller deletes it so the code works once.
pub fn find(code: &str, stored: &[String]) -> Option<usize> {
    let candidate = hash(code);
    let mut found = None;
    for (i, h) in stored.iter().enumerate() {
        if bool::from(candidate.as_bytes().ct_eq(h.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_distinct_well_formed_codes_that_match_once_stored() {
        let codes = generate().expect("rng");
        assert_eq!(codes.len(), COUNT);
        let unique: std::collections::HashSet<_> = codes.iter().collect();
        assert_eq!(unique.len(), COUNT);
        for c in &codes {
            assert_eq!(c.len(), 19);
            assert!(c.split('-').all(|g| g.len() == 4 && g.bytes().all(|b| ALPHABET.contains(&b))), "{c}");
        }
        let stored: Vec<String> = codes.iter().map(|c| hash(c)).collect();
        assert_eq!(find(&codes[3], &stored), Some(3));
        assert_eq!(find(&codes[3].to_uppercase().replace('-', " "), &stored), Some(3), "typing variations");
        assert_eq!(find("0000-0000-0000-0000", &stored), None);
    }
}
