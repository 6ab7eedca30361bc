//! `autoheal login`: keeps the personal token the console issued (`POST
//! /auth/cli-token`, "CLI token") for a host, so that the operator's
//! commands act as that person when no `AUTOHEAL_OPERATOR_TOKEN` is set.
//!
//! The tokens live in `$XDG_CONFIG_HOME/autoheal/credentials.json` (else
//! `~/.config/...`), one per host URL, written with mode 0600: readable by
//! the user alone. The token is read from standard input, never from an
//! argument (which `ps` and shell history would show).

use std::collections::BTreeMap;
use std::io::{BufRead, IsTerminal, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// What a personal token starts with (the host's `auth::session::CLI_TOKEN_PREFIX`).
const PREFIX: &str = "ahp_";

/// `autoheal login`.
#[derive(clap::Args)]
pub struct LoginArgs {
    /// The host's address (the token works there only).
    #[arg(long, env = "AUTOHEAL_URL", default_value = "http://127.0.0.1:9009")]
    url: String,
}

/// The stored tokens, by host URL.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Credentials {
    tokens: BTreeMap<String, String>,
}

/// `$XDG_CONFIG_HOME/autoheal/credentials.json`, or `~/.config/...`.
fn credentials_path() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CONFIG_HOME").or_else(|| absolute("HOME").map(|home| home.join(".config")))?;
    Some(base.join("autoheal/credentials.json"))
}

fn key(url: &str) -> String {
    url.trim().trim_end_matches('/').to_owned()
}

/// The token `autoheal login` kept for `url`, if any.
pub(crate) fn stored_token(url: &str) -> Option<String> {
    let text = std::fs::read_to_string(credentials_path()?).ok()?;
    let credentials: Credentials = serde_json::from_str(&text).ok()?;
    credentials.tokens.get(&key(url)).cloned()
}

/// Reads the token from standard input and keeps it for `--url`.
pub async fn login(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        eprintln!(
            "Paste the token from the console (signed in: \"CLI token\") for {}:",
            key(&args.url)
        );
    }
    let mut line = String::new();
    stdin
        .lock()
        .read_line(&mut line)
        .context("cannot read the token from standard input")?;
    let token = line.trim();
    if !token.starts_with(PREFIX) {
        bail!(
            "that is not a personal token (it starts with {PREFIX}): issue one in the console, signed in, with \"CLI token\""
        );
    }
    let path = credentials_path().context("no HOME or XDG_CONFIG_HOME: nowhere to keep the token")?;
    let mut credentials: Credentials = std::fs::read_to_string(&path)
        .ok()
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default();
    credentials.tokens.insert(key(&args.url), token.to_owned());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    // Written beside and renamed: the file is never half a file, and it is
    // created 0600, never readable by others even for a moment.
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(&credentials)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("cannot write {}", path.display()))?;
    println!(
        "token kept for {} in {}: the operator's commands use it when AUTOHEAL_OPERATOR_TOKEN is not set",
        key(&args.url),
        path.display()
    );
    Ok(ExitCode::SUCCESS)
}
