//! The SMTP reply parser and client fed arbitrary server bytes, in
//! arbitrary pieces, at every step of a conversation (greeting, EHLO,
//! STARTTLS, AUTH with a password or an OAuth 2.0 token, the pipelined
//! envelope, DATA, end of data, QUIT), with
//! timeouts, closes, TLS failures and the caller giving up from the input.
//! Asserts: nothing is consumed twice or beyond the input, the client
//! sends nothing between the 220 to STARTTLS and the handshake, the end of
//! data only after the server's 354 and once, one verdict at most, nothing
//! but one QUIT after it, and nothing at all after `Closed`.
#![no_main]

use arbitrary::Arbitrary;
use atmail_core::header::Address;
use atmail_core::message::{Recipient, RecipientKind};
use atmail_core::reply::ReplyParser;
use atmail_core::sasl::Credentials;
use atmail_core::chunk::ChunkStore;
use atmail_core::config::Transfer;
use atmail_core::smtp::{Envelope, Signal, SmtpClient, TlsPolicy};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Step {
    /// Server bytes: a canned reply that moves the conversation on, or raw bytes.
    Reply(u8),
    Raw(Vec<u8>),
    Wait(u32),
    Closed,
    TlsFailed,
    Quit,
}

#[derive(Arbitrary, Debug)]
struct Input {
    policy: u8,
    /// 0: a password; 1: a short XOAUTH2 token (on the AUTH line); 2: a
    /// 600-byte OAUTHBEARER token (after the 334).
    credentials: u8,
    /// `AT+GTSMTPBDAT`'s mode (0-2): BDAT when the server offers it.
    transfer: u8,
    steps: Vec<Step>,
}

const REPLIES: &[&[u8]] = &[
    b"220 mx ESMTP\r\n",
    b"250-mx\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-STARTTLS\r\n250 AUTH PLAIN LOGIN\r\n",
    b"250 mx\r\n",
    b"220 go ahead\r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"235 ok\r\n",
    b"250 ok\r\n",
    b"354 go\r\n",
    b"550 no\r\n",
    b"221 bye\r\n",
    b"250-mx\r\n250 AUTH LOGIN\r\n",
    b"250-mx\r\n250-PIPELINING\r\n250 AUTH XOAUTH2 OAUTHBEARER\r\n",
    b"334 \r\n",
    b"334 eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIiwic2NvcGUiOiJtYWlsIn0=\r\n",
    b"535 5.7.8 Error: authentication failed\r\n",
    b"250-mx\r\n250-PIPELINING\r\n250-chunking\r\n250-BinaryMime\r\n250 AUTH PLAIN\r\n",
    b"250-mx\r\n250-CHUNKING\r\n250 AUTH LOGIN\r\n",
    b"250 2.0.0 chunk ok\r\n",
    b"554 5.5.0 chunk refused\r\n",
];

fuzz_target!(|input: Input| {
    let mut parser = ReplyParser::new();
    let to = [
        Recipient {
            kind: RecipientKind::To,
            address: Address::new(b"a@b.c").unwrap(),
        },
        Recipient {
            kind: RecipientKind::Bcc,
            address: Address::new(b"d@e.f").unwrap(),
        },
    ];
    let env = Envelope {
        helo_name: b"[10.0.0.1]",
        user: b"u@b.c",
        credentials: match input.credentials % 3 {
            0 => Credentials::Password(b"pw"),
            1 => Credentials::XOAuth2 { token: b"ya29.a0AfB_x" },
            _ => Credentials::OAuthBearer {
                token: &[b'T'; 600],
                host: b"mx.b.c",
                port: 587,
            },
        },
        from: Address::new(b"u@b.c").unwrap(),
        recipients: &to,
        transfer: [Transfer::Off, Transfer::Auto, Transfer::Force][usize::from(input.transfer % 3)],
    };
    // Chunks of 8 bytes, so a message goes in several.
    let mut chunks = ChunkStore::new();
    let _ = chunks.set_storage(Box::leak(vec![0u8; 8].into_boxed_slice()));
    let mut message: &[u8] = b"";
    let policy = [
        TlsPolicy::Opportunistic,
        TlsPolicy::Required,
        TlsPolicy::Implicit,
        TlsPolicy::ClearSignIn,
    ][usize::from(input.policy % 4)];
    // How much of the wire went before TLS was up: no AUTH may be in it
    // unless mode 3 allowed sign-in in the clear.
    let mut tls = policy == TlsPolicy::Implicit;
    let mut plain_len = 0;
    let mut client = SmtpClient::new(0, policy);
    let (mut now, mut wire, mut done) = (0u64, Vec::new(), false);
    let (mut in_handshake, mut ready, mut ends) = (false, false, 0);
    // Where the wire stood at the verdict, if one was given.
    let mut verdict_at: Option<usize> = None;
    let mut buf = [0u8; 37];
    for step in &input.steps {
        let bytes: &[u8] = match step {
            Step::Reply(i) => REPLIES[usize::from(*i) % REPLIES.len()],
            Step::Raw(bytes) => bytes,
            Step::Wait(ms) => {
                now += u64::from(*ms);
                client.handle_timeout(now);
                &[]
            }
            Step::Closed => {
                client.handle_closed();
                &[]
            }
            Step::TlsFailed => {
                client.handle_tls_failed();
                &[]
            }
            Step::Quit => {
                client.quit(now);
                &[]
            }
        };
        // The parser alone: any split, counts within bounds.
        let mut rest = bytes;
        while !rest.is_empty() {
            match parser.feed(rest) {
                Ok((_, n)) => {
                    assert!(n <= rest.len() && n > 0);
                    rest = &rest[n..];
                }
                Err(_) => {
                    parser = ReplyParser::new();
                    break;
                }
            }
        }
        let mut rest = bytes;
        loop {
            let n = client.handle_input(now, &env, rest);
            assert!(n <= rest.len());
            rest = &rest[n..];
            let mut moved = n > 0;
            while let Some(event) = client.poll_signal() {
                moved = true;
                assert!(!done, "an event after the end");
                match event {
                    Signal::StartTls => in_handshake = true,
                    Signal::ReadyForData => {
                        ready = true;
                        if client.framing().is_bdat() {
                            // Staged as it fits, between the chunks.
                            message = b"<message>\r\n";
                        } else {
                            wire.extend_from_slice(b"<message>\r\n");
                            client.end_message(now);
                        }
                    }
                    Signal::Failed(_) | Signal::Delivered => {
                        assert!(verdict_at.is_none(), "two verdicts");
                        verdict_at = Some(wire.len());
                    }
                    Signal::Closed => done = true,
                    _ => {}
                }
            }
            loop {
                if !message.is_empty() {
                    let mut room = [0u8; 8];
                    let n = client.message_room(&chunks, 0, &mut room).len().min(message.len());
                    assert_eq!(chunks.stage(&message[..n]), n);
                    message = &message[n..];
                    if message.is_empty() {
                        client.end_message(now);
                    }
                }
                let w = client.poll_transmit(&env, &mut chunks, &mut buf);
                if w == 0 {
                    break;
                }
                moved = true;
                assert!(!in_handshake, "bytes before the TLS handshake ended");
                assert!(!done, "bytes after the close");
                wire.extend_from_slice(&buf[..w]);
                if !tls {
                    plain_len = wire.len();
                }
                if let Some(at) = verdict_at {
                    // BDAT: the rest of a chunk part way out, then RSET.
                    let after = &wire[at..];
                    let after = match after.iter().position(|&b| b == b'Q' || b == b'R') {
                        Some(i) if client.framing().is_bdat() => &after[i..],
                        _ => after,
                    };
                    assert!(
                        b"QUIT\r\n".starts_with(after) || b"RSET\r\nQUIT\r\n".starts_with(after),
                        "after the verdict, only QUIT: {:?}",
                        String::from_utf8_lossy(&wire[at..])
                    );
                    assert!(!after.windows(5).any(|w| w == b"BDAT "), "no chunk after the verdict");
                }
            }
            if in_handshake {
                in_handshake = false;
                tls = true;
                client.handle_tls_established(now);
            }
            if rest.is_empty() || !moved {
                break;
            }
        }
        let end_count = wire.windows(5).filter(|w| w == b"\r\n.\r\n").count();
        if end_count > ends {
            assert!(ready, "end of data before the server's 354");
            ends = end_count;
        }
        assert!(ends <= 1, "two ends of data");
        let has = |needle: &[u8]| wire.windows(needle.len()).any(|w| w == needle);
        assert!(
            !(has(b"BODY=BINARYMIME") && has(b"DATA\r\n")),
            "BINARYMIME with DATA"
        );
        assert!(
            wire.windows(6).filter(|w| w == b" LAST\r").count() <= 1,
            "LAST once"
        );
        if policy != TlsPolicy::ClearSignIn {
            assert!(
                !wire[..plain_len].windows(5).any(|w| w == b"AUTH "),
                "a credential before TLS: {:?}",
                String::from_utf8_lossy(&wire[..plain_len])
            );
        }
    }
    if let Some(mem) = chunks.take_storage() {
        // SAFETY: the storage leaked above, given back whole; nothing
        // else refers to it.
        drop(unsafe { Box::from_raw(mem as *mut [u8]) });
    }
});
