//! lettre's peer in the airtime benchmark (`benches/scripts/airtime`): one
//! mail of the spec case (section 3 of the G510 SMTP spec: sender, one
//! recipient, the subject `你好 smtp`, a short body, `eee.wma` attached)
//! sent over plain SMTP with AUTH, as lettre's documentation shows.
//!
//! What it does: reads the attachment, builds the message in memory (lettre
//! encodes a binary attachment as base64), then connects and sends it;
//! prints `verdict <code>` the moment the final reply is in, so the script
//! can time the span from connect to verdict without clocks shared across
//! processes. What it does not: TLS, pooling, retries.
//!
//! Usage: `airtime-lettre <port> <attachment>` (server on 127.0.0.1).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::{Attachment, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

const USER: &str = "wangww@fibocom.com";
const PASSWORD: &str = "ght64621178";

fn run(port: u16, path: &str) -> Result<u16, String> {
    let blob = std::fs::read(path).map_err(|e| format!("{path}: {e}"))?;
    let octets = ContentType::parse("application/octet-stream").map_err(|e| e.to_string())?;
    let message = Message::builder()
        .from(USER.parse().map_err(|e| format!("from: {e}"))?)
        .to("xiangj@fibocom.com"
            .parse()
            .map_err(|e| format!("to: {e}"))?)
        .subject("你好 smtp")
        .multipart(
            MultiPart::mixed()
                .singlepart(SinglePart::plain("你好，这是正文。\r\n".to_string()))
                .singlepart(Attachment::new("eee.wma".to_string()).body(blob, octets)),
        )
        .map_err(|e| e.to_string())?;
    // Built before the connection, so the span the script times holds the
    // SMTP session only.
    let mailer = SmtpTransport::builder_dangerous("127.0.0.1")
        .port(port)
        .credentials(Credentials::new(USER.to_string(), PASSWORD.to_string()))
        // 1 MiB at 5 KB/s takes minutes: lettre's 60 s default would cut a
        // slow link, not a dead one.
        .timeout(Some(Duration::from_secs(1800)))
        .build();
    let reply = mailer.send(&message).map_err(|e| e.to_string())?;
    Ok(u16::from(reply.code()))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(port), Some(path)) = (args.get(1).and_then(|p| p.parse().ok()), args.get(2)) else {
        eprintln!("usage: airtime-lettre <port> <attachment>");
        return ExitCode::from(2);
    };
    match run(port, path) {
        Ok(code) => {
            println!("verdict {code}");
            let _ = std::io::stdout().flush();
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("verdict error {e}");
            ExitCode::FAILURE
        }
    }
}
