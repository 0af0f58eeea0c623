//! `--profile FILE`: who the virtual module says it is, and the network
//! it starts on.
//!
//! What it does: reads a TOML file into [`Profile`], every key optional
//! (a missing key keeps its default, so an empty file is the default
//! module), and checks each value as the module would have it: the IMEI
//! 15 digits with a valid Luhn check digit, the IMSI 6-15 digits, the
//! signal in 27.007's ranges, the location and cell as hexadecimal, every
//! text printable ASCII without `"` (they are sent inside quotes). A bad
//! file is refused with a message that names the key (and the line, when
//! TOML gives one).
//!
//! What it does not: change anything while the modem runs; the network's
//! changes come from the control socket (`control`).
//!
//! Why TOML and serde: the profile is hand-written by a host developer,
//! and `toml` with `deny_unknown_fields` turns a misspelt key into an
//! error instead of a silently ignored line.

use serde::Deserialize;
use std::path::Path;

/// The module's identity and starting network; see the module docs.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Profile {
    /// `+CGMI`.
    pub manufacturer: String,
    /// The first value of `+CGMM`.
    pub technology: String,
    /// The second value of `+CGMM`; `ATI3` says `<model> GPRS Module`.
    pub model: String,
    /// `+CGMR` and `ATI8`: the software version.
    pub revision: String,
    /// `ATI9`: the hardware version.
    pub hardware: String,
    /// `ATI` and `ATI0`: the build time.
    pub build: String,
    /// `ATI7`: the bands.
    pub bands: String,
    /// `+CGSN`: 15 digits, the last the Luhn check digit.
    pub imei: String,
    /// `+CIMI`: 6 to 15 digits.
    pub imsi: String,
    /// `+COPS` in long and short alphanumeric form.
    pub operator: String,
    /// `+COPS` in numeric form: MCC and MNC, 5 or 6 digits.
    pub operator_numeric: String,
    /// `+CSQ`'s `<rssi>`: 0-31, or 99 (not known).
    pub rssi: u8,
    /// `+CSQ`'s `<ber>`: 0-7, or 99 (not known).
    pub ber: u8,
    /// `+CREG`'s `<lac>`: 4 hexadecimal digits.
    pub lac: String,
    /// `+CREG`'s `<ci>`: 4 (GSM) or 8 hexadecimal digits.
    pub ci: String,
    /// The registration at power-up: `home`, `roaming`, `searching`,
    /// `denied` or `unregistered`.
    pub registration: String,
    /// The SIM at power-up: `ready` or `absent`.
    pub sim: String,
    /// The address `AT+MIPCALL` reports.
    pub ip: String,
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            manufacturer: "Fibocom".into(),
            technology: "GPRS".into(),
            model: "G510".into(),
            revision: "G510_V0D.00.19".into(),
            hardware: "G510 Q50_V1.02".into(),
            build: "20150426Sun1200".into(),
            bands: "GSM900 1800 850 1900".into(),
            imei: "352656100012346".into(),
            imsi: "001010123456789".into(),
            operator: "atmail".into(),
            // MCC 001, MNC 01: the test network of 3GPP TS 23.122.
            operator_numeric: "00101".into(),
            rssi: 20,
            ber: 0,
            lac: "2A4F".into(),
            ci: "0B12".into(),
            registration: "home".into(),
            sim: "ready".into(),
            ip: "127.0.0.1".into(),
        }
    }
}

/// `+CREG`'s `<stat>` for a registration's name.
pub fn registration_stat(name: &str) -> Option<u8> {
    Some(match name {
        "unregistered" => 0,
        "home" => 1,
        "searching" => 2,
        "denied" => 3,
        "roaming" => 5,
        _ => return None,
    })
}

/// The names [`registration_stat`] takes.
pub const REGISTRATIONS: &str = "home, roaming, searching, denied or unregistered";

impl Profile {
    /// Reads and checks `path`; the error names the file and the key.
    pub fn load(path: &Path) -> Result<Profile, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let profile: Profile = toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), toml_error(&text, &e)))?;
        profile
            .check()
            .map_err(|(key, why)| format!("{}: {key}: {why}", path.display()))?;
        Ok(profile)
    }

    /// Every value as the module would have it; the error is the key and
    /// what is wrong with its value.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let texts = [
            ("manufacturer", &self.manufacturer),
            ("technology", &self.technology),
            ("model", &self.model),
            ("revision", &self.revision),
            ("hardware", &self.hardware),
            ("build", &self.build),
            ("bands", &self.bands),
            ("operator", &self.operator),
            ("ip", &self.ip),
        ];
        for (key, value) in texts {
            if value.is_empty() || value.len() > 64 {
                return Err((key, format!("{value:?} must be 1 to 64 characters")));
            }
            if !value
                .bytes()
                .all(|b| (b' '..=b'~').contains(&b) && b != b'"')
            {
                return Err((
                    key,
                    format!("{value:?} must be printable ASCII without '\"'"),
                ));
            }
        }
        if self.ip.parse::<std::net::Ipv4Addr>().is_err() {
            return Err(("ip", format!("{:?} must be an IPv4 address", self.ip)));
        }
        if !digits(&self.imei, 15, 15) {
            return Err(("imei", format!("{:?} must be 15 digits", self.imei)));
        }
        let check = luhn_digit(&self.imei[..14]);
        if self.imei.as_bytes()[14] != check {
            return Err((
                "imei",
                format!(
                    "{:?} fails the Luhn check: its last digit must be {}",
                    self.imei, check as char
                ),
            ));
        }
        if !digits(&self.imsi, 6, 15) {
            return Err(("imsi", format!("{:?} must be 6 to 15 digits", self.imsi)));
        }
        if !digits(&self.operator_numeric, 5, 6) {
            return Err((
                "operator_numeric",
                format!(
                    "{:?} must be 5 or 6 digits (MCC and MNC)",
                    self.operator_numeric
                ),
            ));
        }
        if !(self.rssi <= 31 || self.rssi == 99) {
            return Err(("rssi", format!("{} must be 0-31 or 99", self.rssi)));
        }
        if !(self.ber <= 7 || self.ber == 99) {
            return Err(("ber", format!("{} must be 0-7 or 99", self.ber)));
        }
        if !hex(&self.lac, &[4]) {
            return Err((
                "lac",
                format!("{:?} must be 4 hexadecimal digits", self.lac),
            ));
        }
        if !hex(&self.ci, &[4, 8]) {
            return Err((
                "ci",
                format!("{:?} must be 4 or 8 hexadecimal digits", self.ci),
            ));
        }
        if registration_stat(&self.registration).is_none() {
            return Err((
                "registration",
                format!("{:?} must be {REGISTRATIONS}", self.registration),
            ));
        }
        if !matches!(self.sim.as_str(), "ready" | "absent") {
            return Err(("sim", format!("{:?} must be ready or absent", self.sim)));
        }
        Ok(())
    }
}

fn digits(value: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_digit())
}

fn hex(value: &str, lengths: &[usize]) -> bool {
    lengths.contains(&value.len()) && value.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The Luhn check digit (ISO/IEC 7812, as 3GPP TS 23.003 uses it for the
/// IMEI) of `payload`'s digits, as an ASCII digit.
pub fn luhn_digit(payload: &str) -> u8 {
    let sum: u32 = payload
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            match i % 2 {
                0 if d * 2 > 9 => d * 2 - 9,
                0 => d * 2,
                _ => d,
            }
        })
        .sum();
    b'0' + ((10 - sum % 10) % 10) as u8
}

/// A TOML error as one line that names the key: TOML's own message, and
/// the line it points at (which starts with the key).
fn toml_error(text: &str, e: &toml::de::Error) -> String {
    let message = e.message().trim_end();
    match e.span() {
        Some(span) => {
            let line_no = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let line = text.lines().nth(line_no - 1).unwrap_or("").trim();
            match line.split_once('=') {
                Some((key, _)) => format!("{}: {message} (line {line_no}: {line})", key.trim()),
                None => format!("line {line_no}: {message} ({line})"),
            }
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_profile_is_valid_and_its_imei_passes_luhn() {
        let p = Profile::default();
        assert_eq!(p.check(), Ok(()));
        // 3GPP TS 23.003's own example: IMEI 35-209900-176148-1.
        assert_eq!(luhn_digit("35209900176148"), b'1');
    }

    #[test]
    fn a_bad_value_names_its_key() {
        let cases = [
            ("imei = \"352656100012345\"", "imei"),
            ("imei = \"35265610001234\"", "imei"),
            ("imsi = \"12a\"", "imsi"),
            ("rssi = 40", "rssi"),
            ("ber = 8", "ber"),
            ("lac = \"XYZ1\"", "lac"),
            ("ci = \"123\"", "ci"),
            ("registration = \"away\"", "registration"),
            ("sim = \"pin\"", "sim"),
            ("operator = \"a\\\"b\"", "operator"),
            ("operator_numeric = \"0010\"", "operator_numeric"),
            ("ip = \"10.0.0\"", "ip"),
        ];
        for (line, key) in cases {
            let p: Profile = toml::from_str(line).expect(line);
            assert_eq!(p.check().map_err(|(k, _)| k), Err(key), "{line}");
        }
    }

    #[test]
    fn a_toml_error_names_the_key_and_line() {
        let text = "model = \"G510\"\nrssi = \"strong\"\n";
        let e = toml::from_str::<Profile>(text).expect_err("an error");
        let said = toml_error(text, &e);
        assert!(said.starts_with("rssi: "), "{said}");
        assert!(said.contains("line 2"), "{said}");
        let e = toml::from_str::<Profile>(
            "imeii = \"1\"
",
        )
        .expect_err("an error");
        assert!(e.message().contains("imeii"), "{}", e.message());
    }
}
