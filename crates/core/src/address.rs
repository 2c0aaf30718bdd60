//! Shipping addresses: only what delivery needs, each field bounded.

use crate::text::{self, TextError};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// ISO 3166-1 alpha-2 codes, space separated.
const COUNTRIES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL \
BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM \
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC \
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE \
NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD \
SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA \
UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// An ISO 3166-1 alpha-2 country code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode([u8; 2]);

/// Why a country code was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be an ISO 3166-1 alpha-2 country code such as DE or US")]
pub struct UnknownCountry;

impl CountryCode {
    /// Parses an upper-case alpha-2 code.
    pub fn parse(code: &str) -> Result<Self, UnknownCountry> {
        let b = code.as_bytes();
        if b.len() != 2 || !b.iter().all(u8::is_ascii_uppercase) {
            return Err(UnknownCountry);
        }
        if !COUNTRIES.split(' ').any(|c| c == code) {
            return Err(UnknownCountry);
        }
        Ok(CountryCode([b[0], b[1]]))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("ZZ")
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl TryFrom<String> for CountryCode {
    type Error = UnknownCountry;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        CountryCode::parse(&s)
    }
}

impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.as_str().to_owned()
    }
}

/// A shipping address as a client sends it, before validation.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddressInput {
    /// Recipient's name, as it should appear on the parcel.
    #[schema(max_length = 200, example = "Ada Lovelace")]
    pub name: String,
    #[schema(max_length = 200, example = "12 St James's Square")]
    pub line1: String,
    #[schema(max_length = 200)]
    pub line2: Option<String>,
    #[schema(max_length = 100, example = "London")]
    pub city: String,
    #[schema(max_length = 20, example = "SW1Y 4JH")]
    pub postal_code: String,
    /// State, province or county, where the country uses one.
    #[schema(max_length = 100)]
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 code.
    #[schema(example = "GB", pattern = "^[A-Z]{2}$")]
    pub country: String,
    /// Only for the carrier; optional.
    #[schema(max_length = 32)]
    pub phone: Option<String>,
}

/// A validated shipping address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Address {
    pub name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    pub region: Option<String>,
    #[schema(value_type = String)]
    pub country: CountryCode,
    pub phone: Option<String>,
}

/// Why an address was refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} {reason}")]
pub struct AddressError {
    /// The offending field, e.g. `postal_code`.
    pub field: &'static str,
    pub reason: String,
}

fn field<T>(name: &'static str, r: Result<T, TextError>) -> Result<T, AddressError> {
    r.map_err(|e| AddressError { field: name, reason: e.to_string() })
}

impl Address {
    /// Validates every field of a client's address.
    pub fn parse(input: &AddressInput) -> Result<Self, AddressError> {
        let phone = field("phone", text::clean_optional(input.phone.as_deref(), 32))?;
        if let Some(p) = &phone {
            let ok = p.chars().all(|c| c.is_ascii_digit() || " +-()./".contains(c));
            if !ok {
                return Err(AddressError {
                    field: "phone",
                    reason: "may hold only digits, spaces and + - ( ) . /".into(),
                });
            }
        }
        Ok(Address {
            name: field("name", text::clean(&input.name, 200))?,
            line1: field("line1", text::clean(&input.line1, 200))?,
            line2: field("line2", text::clean_optional(input.line2.as_deref(), 200))?,
            city: field("city", text::clean(&input.city, 100))?,
            postal_code: field("postal_code", text::clean(&input.postal_code, 20))?,
            region: field("region", text::clean_optional(input.region.as_deref(), 100))?,
            country: CountryCode::parse(input.country.trim())
                .map_err(|e| AddressError { field: "country", reason: e.to_string() })?,
            phone,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> AddressInput {
        AddressInput {
            name: "Ada Lovelace".into(),
            line1: "12 St James's Square".into(),
            line2: None,
            city: "London".into(),
            postal_code: "SW1Y 4JH".into(),
            region: Some("".into()),
            country: "GB".into(),
            phone: Some("+44 20 7946 0000".into()),
        }
    }

    #[test]
    fn parses_a_real_address() {
        let a = Address::parse(&input()).expect("valid");
        assert_eq!(a.country.as_str(), "GB");
        assert_eq!(a.region, None);
    }

    #[test]
    fn names_the_bad_field() {
        let mut i = input();
        i.country = "XX".into();
        assert_eq!(Address::parse(&i).map_err(|e| e.field), Err("country"));
        let mut i = input();
        i.postal_code = "1".repeat(21);
        assert_eq!(Address::parse(&i).map_err(|e| e.field), Err("postal_code"));
        let mut i = input();
        i.phone = Some("call me<script>".into());
        assert_eq!(Address::parse(&i).map_err(|e| e.field), Err("phone"));
    }

    #[test]
    fn country_list_is_well_formed() {
        assert!(COUNTRIES.split(' ').all(|c| c.len() == 2));
        assert_eq!(COUNTRIES.split(' ').count(), 249);
    }
}
