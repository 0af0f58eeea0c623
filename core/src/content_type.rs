//! The MIME type of an attachment, from its file name's extension.
//!
//! What it does: maps a short table of common extensions (what a G510 host
//! sends: logs, sensor data, images, audio, archives) to their types, case-
//! insensitively; anything else is `application/octet-stream`.
//!
//! What it does not: sniff content, or carry the whole IANA registry. The
//! table is kept to types short enough for a 78-column header line, so
//! Office Open XML names (over 70 characters) fall back to the generic type.

use crate::index;

const TABLE: &[(&str, &str)] = &[
    ("3gp", "video/3gpp"),
    ("7z", "application/x-7z-compressed"),
    ("amr", "audio/amr"),
    ("bin", "application/octet-stream"),
    ("bmp", "image/bmp"),
    ("csv", "text/csv"),
    ("doc", "application/msword"),
    ("gif", "image/gif"),
    ("gz", "application/gzip"),
    ("htm", "text/html"),
    ("html", "text/html"),
    ("jpeg", "image/jpeg"),
    ("jpg", "image/jpeg"),
    ("json", "application/json"),
    ("log", "text/plain"),
    ("mp3", "audio/mpeg"),
    ("mp4", "video/mp4"),
    ("pdf", "application/pdf"),
    ("png", "image/png"),
    ("tar", "application/x-tar"),
    ("txt", "text/plain"),
    ("wav", "audio/wav"),
    ("wma", "audio/x-ms-wma"),
    ("xls", "application/vnd.ms-excel"),
    ("xml", "application/xml"),
    ("zip", "application/zip"),
];

/// The MIME type for a file name.
///
/// ```
/// use atmail_core::content_type::for_name;
/// assert_eq!(for_name(b"eee.WMA"), "audio/x-ms-wma");
/// assert_eq!(for_name(b"data.xyz"), "application/octet-stream");
/// assert_eq!(for_name(b"README"), "application/octet-stream");
/// ```
pub fn for_name(name: &[u8]) -> &'static str {
    let ext = match memchr::memrchr(b'.', name) {
        Some(dot) => index::get(name, dot + 1..),
        None => return "application/octet-stream",
    };
    TABLE
        .iter()
        .find(|(e, _)| e.as_bytes().eq_ignore_ascii_case(ext))
        .map_or("application/octet-stream", |&(_, t)| t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_and_types_fit_a_header_line() {
        assert!(TABLE.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(TABLE
            .iter()
            .all(|(_, t)| "Content-Type: ".len() + t.len() < 78));
    }

    #[test]
    fn lookups() {
        assert_eq!(for_name(b"photo.JPG"), "image/jpeg");
        assert_eq!(for_name(b"archive.tar.gz"), "application/gzip");
        assert_eq!(for_name(b"trailing."), "application/octet-stream");
    }
}
