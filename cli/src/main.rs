//! `atmail`: the std host runtime around `atmail-core`.
//!
//! `atmail encode` composes one message offline through the same streaming
//! writer the modem engine uses, reading files in fixed-size chunks;
//! `atmail modem` is a virtual G510 on stdio or a pty around the same
//! engine, sending over TCP, TLS or into a Maildir.

mod basic;
mod control;
mod encode;
mod link;
mod maildir;
mod modem;
mod profile;
mod serial;
mod shaping;
mod transcode;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// atmail: the G510 AT+GTSMTP e-mail engine, on a host.
#[derive(Parser, Debug)]
#[command(name = "atmail", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Compose one MIME message from files, as the modem would send it.
    Encode(encode::Args),
    /// A virtual G510 on stdio or a pty: AT commands in, real mail out.
    Modem(modem::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Encode(args) => encode::run(args),
        Command::Modem(args) => modem::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("atmail: error: {message}");
            ExitCode::FAILURE
        }
    }
}
