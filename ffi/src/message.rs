//! Offline composition: one whole message (header block, text body,
//! attachments, closing boundary) as `atmail encode` writes it, streamed
//! into caller buffers.
//!
//! What it does: keeps the validated header fields (sender, 1 to 20
//! recipients, subject, date, Message-ID), each set by its own call so a
//! refusal names its field, and drives the core's
//! `MessageWriter` part by part; a body can be checked against the charset
//! in a first pass (`_check_body`) so a caller can refuse it before it
//! writes a byte, as the CLI does.
//!
//! What it does not: read files or pick a date or an ID (the caller's), or
//! run in a firmware (host builds only, the `std` feature): a module
//! composes through the session, and these fields live on the heap.

use crate::atmail_status;
use crate::boundary::{free_boxed, new_boxed, OutPtr};
use crate::header::{charset, status_of};
use atmail_core::charset::{Charset, Validator};
use atmail_core::header::{Address, HeaderError, Text, Token};
use atmail_core::message::{
    Boundary, MessageError, MessageHead, MessageId, MessageWriter, Recipient, RecipientKind,
    MAX_RECIPIENTS,
};
use atmail_core::CoderResult;

/// A message being composed (opaque).
pub struct atmail_message {
    charset: Charset,
    /// Made when the header block starts: the Message-ID seeds its boundary.
    writer: Option<MessageWriter>,
    from: Vec<u8>,
    recipients: Vec<(RecipientKind, Vec<u8>)>,
    subject: Vec<u8>,
    date: Vec<u8>,
    message_id: Vec<u8>,
    /// The first pass over the body (`atmail_message_check_body`).
    body_check: Validator,
    body_seen: u64,
}

impl atmail_message {
    /// Writes the header block with the stored fields, validated again
    /// here only to borrow them as the core's types (each was checked when
    /// it was set). A field never set is `EMPTY`.
    fn head(&mut self, dst: &mut [u8]) -> Result<(CoderResult, usize), atmail_status> {
        let from = Address::new(&self.from).map_err(status_of)?;
        let recipients = self
            .recipients
            .iter()
            .map(|(kind, address)| {
                Address::new(address).map(|address| Recipient {
                    kind: *kind,
                    address,
                })
            })
            .collect::<Result<Vec<_>, HeaderError>>()
            .map_err(status_of)?;
        let subject = match self.subject.is_empty() {
            true => None,
            false => Some(Text::subject(self.charset, &self.subject).map_err(status_of)?),
        };
        let recipients = recipients.as_slice();
        let head = MessageHead {
            from,
            recipients: &recipients,
            subject,
            date: Token::new(&self.date, true).map_err(status_of)?,
            message_id: MessageId::new(&self.message_id).map_err(status_of)?,
        };
        let charset = self.charset;
        let writer = self.writer.get_or_insert_with(|| {
            MessageWriter::new(charset, Boundary::from_seed(head.message_id.as_bytes()))
        });
        writer.head(&head, dst).map_err(message_status)
    }

    /// The writer, once the header block has started.
    fn writer(&mut self) -> Result<&mut MessageWriter, MessageError> {
        self.writer.as_mut().ok_or(MessageError::OutOfOrder)
    }

    /// Stores a header field after `check`, unless the header block has
    /// started.
    fn set(
        &mut self,
        value: &[u8],
        check: impl FnOnce(&[u8]) -> Result<(), HeaderError>,
        field: impl FnOnce(&mut Self) -> &mut Vec<u8>,
    ) -> atmail_status {
        if self.writer.is_some() {
            return atmail_status::WrongState;
        }
        if let Err(e) = check(value) {
            return status_of(e);
        }
        *field(self) = value.to_vec();
        atmail_status::Ok
    }
}

fn message_status(error: MessageError) -> atmail_status {
    match error {
        MessageError::OutOfOrder => atmail_status::WrongState,
        MessageError::Recipients => atmail_status::Empty,
        MessageError::InvalidBody(_) => atmail_status::InvalidText,
        _ => atmail_status::InvalidParameter,
    }
}

fn coder_status(result: CoderResult) -> atmail_status {
    match result {
        CoderResult::InputEmpty => atmail_status::Ok,
        CoderResult::OutputFull => atmail_status::OutputFull,
    }
}

/// A streaming step's result, through its out-parameters.
fn report(
    step: Result<(CoderResult, usize, usize), MessageError>,
    read: OutPtr<usize>,
    written: OutPtr<usize>,
) -> atmail_status {
    match step {
        Ok((result, r, w)) => {
            read.set(r);
            written.set(w);
            coder_status(result)
        }
        Err(e) => message_status(e),
    }
}

/// Starts a message in `charset` (an `atmail_charset` code). Set its
/// sender, date, Message-ID and recipients (and a subject if any) before
/// the header block; free it with `atmail_message_free`.
///
/// Host builds only (the `std` feature).
///
/// # Undefined behavior
/// `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_new(
    charset_code: u32,
    out: *mut *mut atmail_message,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let Some(charset) = charset(charset_code) else {
            return atmail_status::InvalidParameter;
        };
        let message = atmail_message {
            charset,
            writer: None,
            from: Vec::new(),
            recipients: Vec::new(),
            subject: Vec::new(),
            date: Vec::new(),
            message_id: Vec::new(),
            body_check: Validator::new(charset),
            body_seen: 0,
        };
        new_boxed(message, out)
    })
}

/// Sets `From:` (and the envelope sender): `addr-spec` ASCII. Bad
/// addresses get `INVALID_PARAMETER`, `EMPTY`, `TOO_LONG` or
/// `CONTROL_CHARACTER`; after the header block started, `WRONG_STATE`.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `from` readable for `from_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_set_from(
    message: *mut atmail_message,
    from: *const u8,
    from_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let from = try_slice!(from, from_len);
        message.set(from, |v| Address::new(v).map(drop), |m| &mut m.from)
    })
}

/// Sets `Date:`, an RFC 5322 date-time (printable ASCII, spaces allowed).
/// Errors as `atmail_message_set_from`.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `date` readable for `date_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_set_date(
    message: *mut atmail_message,
    date: *const u8,
    date_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let date = try_slice!(date, date_len);
        message.set(date, |v| Token::new(v, true).map(drop), |m| &mut m.date)
    })
}

/// Sets `Message-ID:`, `<local@domain>`; it also seeds the MIME boundary.
/// Errors as `atmail_message_set_from`.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `message_id` readable for
/// `message_id_len`.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_set_message_id(
    message: *mut atmail_message,
    message_id: *const u8,
    message_id_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let id = try_slice!(message_id, message_id_len);
        message.set(id, |v| MessageId::new(v).map(drop), |m| &mut m.message_id)
    })
}

/// Frees a message; NULL is a no-op.
///
/// # Undefined behavior
/// `message` NULL or from `atmail_message_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_free(message: *mut atmail_message) {
    boundary!((), {
        // SAFETY: this function's own contract.
        unsafe { free_boxed(message) }
    })
}

/// Adds a recipient: `kind` 1 (To), 2 (Cc) or 3 (Bcc, in no header), as
/// `AT+GTSMTPDST` numbers them. Bad addresses get the header statuses; a
/// 21st recipient `INVALID_PARAMETER`; after the header block was started,
/// `WRONG_STATE`.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `address` readable for
/// `address_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_add_recipient(
    message: *mut atmail_message,
    kind: u32,
    address: *const u8,
    address_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let address = try_slice!(address, address_len);
        let kind = match kind {
            1 => RecipientKind::To,
            2 => RecipientKind::Cc,
            3 => RecipientKind::Bcc,
            _ => return atmail_status::InvalidParameter,
        };
        if message.writer.is_some() {
            return atmail_status::WrongState;
        }
        if let Err(e) = Address::new(address) {
            return status_of(e);
        }
        if message.recipients.len() == MAX_RECIPIENTS {
            return atmail_status::InvalidParameter;
        }
        message.recipients.push((kind, address.to_vec()));
        atmail_status::Ok
    })
}

/// Sets the subject, bytes in the message's charset (empty: no `Subject:`
/// line). Bad subjects get `INVALID_TEXT`, `TOO_LONG` (over 200 bytes) or
/// `CONTROL_CHARACTER`, and leave the subject as it was; after the header
/// block started, `WRONG_STATE`.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `subject` readable for
/// `subject_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_set_subject(
    message: *mut atmail_message,
    subject: *const u8,
    subject_len: usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let subject = try_slice!(subject, subject_len);
        let charset = message.charset;
        let check = |v: &[u8]| match v.is_empty() {
            true => Ok(()),
            false => Text::subject(charset, v).map(drop),
        };
        message.set(subject, check, |m| &mut m.subject)
    })
}

/// The first pass over the body: checks `src[0..src_len]`, the next piece
/// of it (`last` with the final one, which may be empty), against the
/// charset without writing anything. `INVALID_TEXT` sets `*offset` to the
/// offset of the first bad byte in the whole body; `TOO_LONG` means the
/// body passed 20 MiB.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `src` readable for `src_len`
/// bytes; `offset` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_check_body(
    message: *mut atmail_message,
    src: *const u8,
    src_len: usize,
    last: bool,
    offset: *mut u64,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let src = try_slice!(src, src_len);
        let offset = try_out!(offset);
        message.body_seen += src.len() as u64;
        if message.body_seen > atmail_core::framer::MAX_PAYLOAD {
            return atmail_status::TooLong;
        }
        match message.body_check.feed(src, last) {
            Ok(_) => atmail_status::Ok,
            Err(e) => {
                offset.set(e.offset as u64);
                atmail_status::InvalidText
            }
        }
    })
}

/// Writes the header block into `dst[0..dst_len]`, the count to
/// `*written`: `OK` when it is whole, `OUTPUT_FULL` to call again with more
/// room. A message without recipients gets `EMPTY`.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `dst` writable for `dst_len`
/// bytes; `written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_head(
    message: *mut atmail_message,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let dst = try_slice_mut!(dst, dst_len);
        let written = try_out!(written);
        match message.head(dst) {
            Ok((result, n)) => {
                written.set(n);
                coder_status(result)
            }
            Err(status) => status,
        }
    })
}

/// Streams the text body, once, after the header block and before any
/// attachment, as `atmail_base64_encoder_encode` streams (same buffers,
/// `last` and results). Bytes not valid in the charset get `INVALID_TEXT`
/// (check the body first to refuse it before any output).
///
/// # Undefined behavior
/// As `atmail_base64_encoder_encode`, with `message` from
/// `atmail_message_new`.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_body(
    message: *mut atmail_message,
    src: *const u8,
    src_len: usize,
    read: *mut usize,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
    last: bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let src = try_slice!(src, src_len);
        let dst = try_slice_mut!(dst, dst_len);
        let (read, written) = (try_out!(read), try_out!(written));
        let step = message.writer().and_then(|w| w.body(src, dst, last));
        report(step, read, written)
    })
}

/// Streams one attachment named `name[0..name_len]` (in the charset; pass
/// the same name on every call for it), as `atmail_message_body` streams.
/// A bad name gets the header statuses, a 21st attachment
/// `INVALID_PARAMETER`.
///
/// # Undefined behavior
/// As `atmail_message_body`; `name` readable for `name_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_attachment(
    message: *mut atmail_message,
    name: *const u8,
    name_len: usize,
    src: *const u8,
    src_len: usize,
    read: *mut usize,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
    last: bool,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let name = try_slice!(name, name_len);
        let src = try_slice!(src, src_len);
        let dst = try_slice_mut!(dst, dst_len);
        let (read, written) = (try_out!(read), try_out!(written));
        let name = match Text::file_name(message.charset, name) {
            Ok(name) => name,
            Err(e) => return status_of(e),
        };
        let step = message
            .writer()
            .and_then(|w| w.attachment(&name, src, dst, last));
        report(step, read, written)
    })
}

/// Writes the closing boundary (and an empty text part if no body was
/// written): `OK` when the message is complete, `OUTPUT_FULL` to call
/// again with more room.
///
/// # Undefined behavior
/// `message` from `atmail_message_new`; `dst` writable for `dst_len`
/// bytes; `written` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn atmail_message_finish(
    message: *mut atmail_message,
    dst: *mut u8,
    dst_len: usize,
    written: *mut usize,
) -> atmail_status {
    boundary!(atmail_status::Panic, {
        let message = try_mut!(message);
        let dst = try_slice_mut!(dst, dst_len);
        let written = try_out!(written);
        match message.writer().and_then(|w| w.finish(dst)) {
            Ok((result, n)) => {
                written.set(n);
                coder_status(result)
            }
            Err(e) => message_status(e),
        }
    })
}
