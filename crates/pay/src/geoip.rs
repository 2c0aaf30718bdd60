//! The country an IP address is in, from a MaxMind DB file (GeoLite2 or
//! GeoIP2 Country or City, or any database with the same `country.iso_code`
//! layout, such as DB-IP's lite country file).
//!
//! The store cannot download a database itself: GeoLite2 needs an account.
//! The owner points `[risk] geoip_database` at the file; without one the
//! country rule simply does not run.

use serde::Deserialize;
use std::net::IpAddr;
use std::path::Path;

/// A loaded country database. Lookups are read-only and lock-free.
pub struct CountryDb {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl std::fmt::Debug for CountryDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CountryDb").field("database_type", &self.reader.metadata().database_type).finish()
    }
}

/// The database file is missing, unreadable or not a MaxMind DB.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct GeoIpError(String);

/// The parts of a GeoIP2 record the store reads.
#[derive(Deserialize)]
struct Record<'a> {
    #[serde(borrow)]
    country: Option<Named<'a>>,
    #[serde(borrow)]
    registered_country: Option<Named<'a>>,
}

#[derive(Deserialize)]
struct Named<'a> {
    iso_code: Option<&'a str>,
}

impl CountryDb {
    /// Reads the whole file into memory (a country database is a few MiB).
    pub fn open(path: &Path) -> Result<CountryDb, GeoIpError> {
        let bytes = std::fs::read(path).map_err(|e| GeoIpError(format!("cannot read {}: {e}", path.display())))?;
        CountryDb::from_bytes(bytes).map_err(|GeoIpError(e)| GeoIpError(format!("{}: {e}", path.display())))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<CountryDb, GeoIpError> {
        let reader =
            maxminddb::Reader::from_source(bytes).map_err(|e| GeoIpError(format!("not a MaxMind DB file: {e}")))?;
        Ok(CountryDb { reader })
    }

    /// The ISO 3166-1 alpha-2 code of the country `ip` is in, upper case;
    /// `None` when the database does not know (private ranges, gaps) or its
    /// record is malformed. Where the database knows only the country the
    /// network is registered in (satellite, anycast), that one is used.
    pub fn country(&self, ip: IpAddr) -> Option<String> {
        let found = self.reader.lookup(ip).ok()?;
        let record: Record<'_> = found.decode().ok()??;
        let code = record.country.and_then(|c| c.iso_code).or(record.registered_country.and_then(|c| c.iso_code))?;
        (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic())).then(|| code.to_ascii_uppercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmdb_writer::{Value, Writer, ipnet::IpNet};

    fn database() -> CountryDb {
        let mut w = Writer::new("GeoLite2-Country");
        let country = |code: &str| Value::map([("iso_code", Value::from(code))]);
        for (net, record) in [
            ("81.2.69.0/24", Value::map([("country", country("GB"))])),
            ("2a02:c7f::/32", Value::map([("country", country("gb"))])),
            ("89.160.20.0/24", Value::map([("country", country("SE")), ("registered_country", country("DE"))])),
            ("67.43.156.0/24", Value::map([("registered_country", country("BT"))])),
            ("203.0.113.0/24", Value::map([("country", country("not-a-code"))])),
            ("198.51.100.0/24", Value::map([("continent", Value::map([("code", Value::from("EU"))]))])),
        ] {
            w.insert_value(net.parse::<IpNet>().expect("net"), record).expect("insert");
        }
        CountryDb::from_bytes(w.to_bytes().expect("bytes")).expect("open")
    }

    #[test]
    fn countries_come_from_the_record_upper_cased() {
        let db = database();
        let at = |ip: &str| db.country(ip.parse().expect("ip"));
        assert_eq!(at("81.2.69.160").as_deref(), Some("GB"));
        assert_eq!(at("2a02:c7f:1234::1").as_deref(), Some("GB"));
        // The country wins over where the network is registered…
        assert_eq!(at("89.160.20.128").as_deref(), Some("SE"));
        // …which is used when it is all there is.
        assert_eq!(at("67.43.156.1").as_deref(), Some("BT"));
    }

    #[test]
    fn unknown_addresses_and_odd_records_give_no_country() {
        let db = database();
        let at = |ip: &str| db.country(ip.parse().expect("ip"));
        assert_eq!(at("8.8.8.8"), None);
        assert_eq!(at("127.0.0.1"), None);
        assert_eq!(at("203.0.113.9"), None, "a malformed code is not trusted");
        assert_eq!(at("198.51.100.1"), None, "a record without a country");
    }

    #[test]
    fn files_that_are_not_databases_are_refused_with_their_path() {
        assert!(CountryDb::from_bytes(b"hello".to_vec()).is_err());
        let missing = CountryDb::open(Path::new("/nonexistent/GeoLite2-Country.mmdb")).expect_err("missing");
        assert!(missing.to_string().contains("/nonexistent/GeoLite2-Country.mmdb"), "{missing}");
    }
}
