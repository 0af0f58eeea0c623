//! The header encoder: a `Subject:` line, and an attachment's
//! `Content-Type` and `Content-Disposition` lines, in the session charset.

use crate::atmail_status;
use crate::boundary::OutPtr;
use atmail_core::charset::Charset;
use atmail_core::content_type;
use atmail_core::header::{
    write_content_type, write_disposition, write_subject, HeaderError, Text,
};
use atmail_core::out::{Count, Out};

/// Writes into a C buffer known to be large enough.
struct SliceOut<'a> {
    dst: &'a mut [u8],
    len: usize,
}

impl Out for SliceOut<'_> {
    fn put(&mut self, bytes: &[u8]) {
        // `get_mut` and a constant panic, not `dst[..]`, and a loop, not
        // `copy_from_slice` (kept out of line, with its own check): their
        // panic messages format numbers, which links `core::fmt` into the
        // firmware (see atmail-core's `index` module).
        let room = self.dst.get_mut(self.len..).unwrap_or_default();
        match room.get_mut(..bytes.len()) {
            Some(dst) => dst.iter_mut().zip(bytes).for_each(|(d, s)| *d = *s),
            None => too_small(),
        }
        self.len += bytes.len();
    }
}

/// The caller sized `dst` with [`Count`] first, so this never runs.
#[cold]
#[inline(never)]
#[track_caller]
fn too_small() -> ! {
    panic!("header buffer smaller than counted")
}

pub(crate) fn charset(code: u32) -> Option<Charset> {
    u8::try_from(code).ok().and_then(Charset::from_code)
}

pub(crate) fn status_of(error: HeaderError) -> atmail_status {
    match error {
        HeaderError::Empty => atmail_status::Empty,
        HeaderError::TooLong { .. } => atmail_status::TooLong,
        HeaderError::Control(_) => atmail_status::ControlCharacter,
        HeaderError::InvalidCharset(_) => atmail_status::InvalidText,
        _ => atmail_status::InvalidParameter,
    }
}

/// Writes what `write` writes into `dst` if it fits whole; else writes
/// nothing. Returns its length either way (the size needed, as `rustls`
/// does) and the status.
pub(crate) fn put_whole(dst: &mut [u8], write: impl Fn(&mut dyn Out)) -> (usize, atmail_status) {
    let mut count = Count::default();
    write(&mut count);
    if count.0 > dst.len() {
        return (count.0, atmail_status::InsufficientSize);
    }
    write(&mut SliceOut { dst, len: 0 });
    (count.0, atmail_status::Ok)
}

/// [`put_whole`], its length into `*written`.
fn write_whole(
    dst: &mut [u8],
    written: OutPtr<usize>,
    write: impl Fn(&mut dyn Out),
) -> atmail_status {
    let (len, status) = put_whole(dst, write);
    written.set(len);
    status
}

/// Writes `Subject: ...\r\n` (folded at 78 columns; RFC 2047 encoded-words
/// unless the subject is plain ASCII) for `subject[0..subject_len]` in
/// `charset` (an `atmail_charset` code) into `dst[0..dst_len]`, and the
/// length to `*written`. If `dst` is too small, nothing is written,
/// `*written` is the size needed and the status `INSUFFICIENT_SIZE`. Bad
/// subjects get `INVALID_TEXT`, `TOO_LONG` (over 200 bytes) or
/// `CONTROL_CHARACTER`.
///
/// # Undefined behavior
/// `subject` readable for `subject_len` bytes and `dst` writable for
/// `dst_len` bytes (either NULL when its length is 0), not overlapping;
/// `written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_header_subject(
    charset: u32,
    subject: *const u8,
    subject_len: usize,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let subject = try_slice!(subject, subject_len);
        let dst = try_slice_mut!(dst, dst_len);
        let written = try_out!(written);
        let Some(charset) = self::charset(charset) else {
            return atmail_status::InvalidParameter;
        };
        match Text::subject(charset, subject) {
            Ok(text) => write_whole(dst, written, |out| write_subject(out, &text)),
            Err(e) => status_of(e),
        }
    })
}

/// Writes an attachment's `Content-Type: <type by extension>; name=...` and
/// `Content-Disposition: attachment; filename=...` lines (RFC 2047 and RFC
/// 2231 forms for names that are not plain ASCII) for `name[0..name_len]`
/// in `charset`. Buffers and errors as `atmail_header_subject`; names over
/// 80 bytes get `TOO_LONG`.
///
/// # Undefined behavior
/// As `atmail_header_subject`.
#[no_mangle]
pub unsafe extern "C" fn atmail_header_attachment(
    charset: u32,
    name: *const u8,
    name_len: usize,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let name = try_slice!(name, name_len);
        let dst = try_slice_mut!(dst, dst_len);
        let written = try_out!(written);
        let Some(charset) = self::charset(charset) else {
            return atmail_status::InvalidParameter;
        };
        match Text::file_name(charset, name) {
            Ok(text) => write_whole(dst, written, |out| {
                write_content_type(out, content_type::for_name(name), &text);
                write_disposition(out, &text);
            }),
            Err(e) => status_of(e),
        }
    })
}
