//! `restapi.ciphers`: Patroni hands the string to OpenSSL (`SSLContext.set_ciphers`); Tribune's
//! TLS is rustls, which offers nine suites, all AEAD with forward secrecy. This reads the
//! OpenSSL cipher-list forms a patroni.yml uses and maps them onto those suites:
//! - a suite by its OpenSSL name (`ECDHE-RSA-AES128-GCM-SHA256`) or IANA name
//!   (`TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256`);
//! - a group: `HIGH`, `DEFAULT`, `ALL`, `SECURE`, `ECDHE`/`EECDH`/`kECDHE`, `AESGCM`, `AES128`,
//!   `AES256`, `CHACHA20`, `ECDSA`/`aECDSA`, `RSA`/`aRSA`; `A+B` is their intersection;
//! - an exclusion `!X` or `-X` of any of those, or of a family rustls never offers (`aNULL`,
//!   `MD5`, `RC4`, `3DES`, ...), which then changes nothing.
//!
//! Anything else is refused with the list of what is understood.
//!
//! As with Python's `set_ciphers`, the list restricts TLS 1.2; the TLS 1.3 suites stay on
//! unless the list names TLS 1.3 suites itself. A list that leaves no TLS 1.2 suite turns
//! TLS 1.2 off.

use rustls::SupportedCipherSuite;
use rustls::crypto::ring::default_provider;

/// Families OpenSSL knows that rustls never offers: excluding them changes nothing.
const NEVER_OFFERED: &[&str] = &[
    "aNULL", "eNULL", "NULL", "MD5", "RC4", "DES", "3DES", "EXP", "EXPORT", "LOW", "MEDIUM", "PSK",
    "SRP", "DSS", "aDSS", "CAMELLIA", "SEED", "IDEA", "SHA1", "ADH", "AECDH", "kRSA", "DH", "EDH",
    "DHE", "kDHE", "ARIA", "CBC", "SHA", "aPSK", "kPSK", "SSLv3",
];

/// OpenSSL's name for a rustls suite (`TLS13_*` suites keep their IANA-style name without the
/// `13`, as OpenSSL writes them).
fn openssl_name(suite: SupportedCipherSuite) -> String {
    let iana = format!("{:?}", suite.suite());
    if let Some(rest) = iana.strip_prefix("TLS13_") {
        return format!("TLS_{rest}");
    }
    let rest = iana.strip_prefix("TLS_").unwrap_or(&iana);
    let (kx, cipher) = rest.split_once("_WITH_").unwrap_or((rest, ""));
    let cipher = cipher
        .replace("AES_256_GCM", "AES256-GCM")
        .replace("AES_128_GCM", "AES128-GCM")
        .replace("CHACHA20_POLY1305_SHA256", "CHACHA20-POLY1305")
        .replace('_', "-");
    format!("{}-{cipher}", kx.replace('_', "-"))
}

fn is_tls13(suite: SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

/// The suites a name stands for; `None` when it names nothing known.
fn named(name: &str, all: &[SupportedCipherSuite]) -> Option<Vec<SupportedCipherSuite>> {
    let upper = name.to_ascii_uppercase();
    let tls12 = || all.iter().copied().filter(|s| !is_tls13(*s));
    let having = |part: &str| {
        Some(
            tls12()
                .filter(|s| openssl_name(*s).contains(part))
                .collect(),
        )
    };
    match upper.as_str() {
        "HIGH" | "DEFAULT" | "ALL" | "SECURE" | "COMPLEMENTOFDEFAULT" => {
            return Some(tls12().collect());
        }
        "ECDHE" | "EECDH" | "KECDHE" | "AECDHE" => return Some(tls12().collect()),
        "AESGCM" => return having("GCM"),
        "AES128" => return having("AES128"),
        "AES256" => return having("AES256"),
        "AES" => return having("AES"),
        "CHACHA20" => return having("CHACHA20"),
        "ECDSA" | "AECDSA" => return having("ECDSA"),
        "RSA" | "ARSA" => return having("-RSA-"),
        _ => {}
    }
    let exact: Vec<SupportedCipherSuite> = all
        .iter()
        .copied()
        .filter(|s| {
            openssl_name(*s).eq_ignore_ascii_case(name)
                || format!("{:?}", s.suite()).eq_ignore_ascii_case(name)
        })
        .collect();
    (!exact.is_empty()).then_some(exact)
}

/// The suites of `ciphers`, or an error naming the entry that is not understood.
pub fn suites(ciphers: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let all = default_provider().cipher_suites;
    let mut chosen: Vec<SupportedCipherSuite> = Vec::new();
    let mut excluded: Vec<SupportedCipherSuite> = Vec::new();
    let entries = ciphers
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|e| !e.is_empty());
    for entry in entries {
        let (exclude, body) = match entry.strip_prefix(['!', '-']) {
            Some(body) => (true, body),
            None => (false, entry.strip_prefix('+').unwrap_or(entry)),
        };
        if exclude && NEVER_OFFERED.iter().any(|n| n.eq_ignore_ascii_case(body)) {
            continue;
        }
        let mut set: Option<Vec<SupportedCipherSuite>> = None;
        for part in body.split('+') {
            let Some(found) = named(part, &all) else {
                let known: Vec<String> = all.iter().map(|s| openssl_name(*s)).collect();
                return Err(format!(
                    "`{part}` is not a cipher suite Tribune's TLS (rustls) offers; it offers {} \
                     (and the groups HIGH, DEFAULT, ECDHE, AESGCM, AES128, AES256, CHACHA20, \
                     ECDSA, RSA)",
                    known.join(", ")
                ));
            };
            set = Some(match set {
                None => found,
                Some(prev) => prev
                    .into_iter()
                    .filter(|s| found.iter().any(|f| f.suite() == s.suite()))
                    .collect(),
            });
        }
        let set = set.unwrap_or_default();
        if exclude {
            excluded.extend(set);
        } else {
            for s in set {
                if !chosen.iter().any(|c| c.suite() == s.suite()) {
                    chosen.push(s);
                }
            }
        }
    }
    chosen.retain(|s| !excluded.iter().any(|e| e.suite() == s.suite()));
    // TLS 1.3 stays on unless the list chose TLS 1.3 suites itself (as Python's set_ciphers).
    if !chosen.iter().any(|s| is_tls13(*s)) {
        let tls13 = all
            .iter()
            .copied()
            .filter(|s| is_tls13(*s) && !excluded.iter().any(|e| e.suite() == s.suite()));
        chosen.extend(tls13);
    }
    if chosen.is_empty() {
        return Err(format!("`{ciphers}` leaves no cipher suite"));
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ciphers: &str) -> Vec<String> {
        suites(ciphers)
            .unwrap()
            .into_iter()
            .map(openssl_name)
            .collect()
    }

    const TLS13: [&str; 3] = [
        "TLS_AES_256_GCM_SHA384",
        "TLS_AES_128_GCM_SHA256",
        "TLS_CHACHA20_POLY1305_SHA256",
    ];

    #[test]
    fn openssl_lists_map_onto_rustls_suites() {
        let mut expected = vec!["ECDHE-RSA-AES128-GCM-SHA256".to_owned()];
        expected.extend(TLS13.iter().map(|s| s.to_string()));
        assert_eq!(names("ECDHE-RSA-AES128-GCM-SHA256"), expected);
        assert_eq!(
            names("TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256:!aNULL:!MD5"),
            expected
        );
        let gcm_rsa = names("ECDHE+AESGCM:!ECDSA");
        assert!(gcm_rsa.contains(&"ECDHE-RSA-AES256-GCM-SHA384".to_owned()));
        // TLS 1.2: the RSA GCM suites only; TLS 1.3's three stay on.
        assert_eq!(
            gcm_rsa,
            [
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES128-GCM-SHA256",
                TLS13[0],
                TLS13[1],
                TLS13[2]
            ]
        );
        assert_eq!(names("HIGH:!aNULL:!MD5").len(), 9);
        assert_eq!(names("TLS_AES_256_GCM_SHA384"), ["TLS_AES_256_GCM_SHA384"]);
    }

    #[test]
    fn unknown_names_are_refused_with_what_is_offered() {
        let err = suites("AES128-SHA:HIGH").unwrap_err();
        assert!(err.contains("`AES128-SHA`"), "{err}");
        assert!(err.contains("ECDHE-RSA-AES128-GCM-SHA256"), "{err}");
        assert!(suites("HIGH:!HIGH:!TLS_AES_256_GCM_SHA384:!TLS_AES_128_GCM_SHA256:!TLS_CHACHA20_POLY1305_SHA256").is_err());
    }
}
