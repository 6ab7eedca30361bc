//! `autoheal pause`, `autoheal pauses` and `autoheal resume ID`: operators'
//! pauses, through the host's HTTP surface.

use std::process::ExitCode;

use autoheal_api::pauses::{MAX_PAUSE_SEC, Pause, PauseRequest, PausesAnswer, ResumeRequest};
use autoheal_core::util::parse_duration;

use crate::ops_cmd::{Remote, Scope, who};

/// `autoheal pause`.
#[derive(clap::Args)]
pub struct PauseArgs {
    #[command(flatten)]
    remote: Remote,
    /// Only this plugin's actions pause [default: every plugin's].
    #[arg(long)]
    plugin: Option<String>,
    /// Only alerts whose labels match pause, e.g. 'service="crm"' (`=`
    /// and `!=`, as for `autoheal ack`) [default: every alert].
    #[arg(long = "match", value_name = "MATCHERS")]
    matchers: Option<String>,
    /// How long, e.g. 2h (at most 7 days).
    #[arg(long = "for", value_name = "DURATION")]
    duration: String,
    /// Why: shown with every action the pause stops.
    #[arg(long)]
    reason: String,
    /// A comment on who pauses, for the audit trail (`by_comment`; `by` is who the token proves) [default: $USER].
    #[arg(long)]
    by: Option<String>,
}

/// `autoheal pauses`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    remote: Remote,
    /// Print `GET /pauses` as JSON.
    #[arg(long)]
    json: bool,
}

/// `autoheal resume`.
#[derive(clap::Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    remote: Remote,
    /// The pause's id (`autoheal pauses` lists them).
    id: String,
    /// A comment on who resumes, for the audit trail (`by_comment`; `by` is who the token proves) [default: $USER].
    #[arg(long)]
    by: Option<String>,
}

/// `autoheal pause`: prints the pause's id and end.
pub async fn pause(args: PauseArgs) -> anyhow::Result<ExitCode> {
    // Checked here too, so that the mistake is named before the host is asked.
    let duration =
        parse_duration(&args.duration).map_err(|e| anyhow::anyhow!("--for {:?}: {}", e.text, e.reason))?;
    anyhow::ensure!(
        duration.as_secs() <= MAX_PAUSE_SEC,
        "--for {}: a pause lasts at most 7 days (a longer stop is `autoheal disable`)",
        args.duration
    );
    anyhow::ensure!(!args.reason.trim().is_empty(), "--reason must say why");
    let remote = &args.remote;
    let body = PauseRequest {
        plugin: args.plugin.clone(),
        matchers: args.matchers.clone(),
        duration: args.duration.clone(),
        reason: args.reason.clone(),
        by: Some(who(args.by.clone())),
    };
    let pause: Pause = remote
        .fetch(
            remote
                .request(reqwest::Method::POST, "/pauses", Scope::Operator)?
                .json(&body),
        )
        .await?;
    println!(
        "paused {} until {} (id {}; `autoheal resume {}` ends it)",
        pause.scope(),
        time(pause.until),
        pause.id,
        pause.id
    );
    Ok(ExitCode::SUCCESS)
}

/// `autoheal pauses`: the active pauses.
pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let answer: PausesAnswer = remote
        .fetch(remote.request(reqwest::Method::GET, "/pauses", Scope::Read)?)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print!("{}", render(&answer));
    }
    Ok(ExitCode::SUCCESS)
}

/// `autoheal resume ID`.
pub async fn resume(args: ResumeArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.id.is_empty() && args.id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{:?} is not a pause id (letters and digits; `autoheal pauses` lists them)",
        args.id
    );
    let remote = &args.remote;
    let body = ResumeRequest {
        by: Some(who(args.by.clone())),
    };
    let pause: Pause = remote
        .fetch(
            remote
                .request(
                    reqwest::Method::DELETE,
                    &format!("/pauses/{}", args.id),
                    Scope::Operator,
                )?
                .json(&body),
        )
        .await?;
    println!("resumed {} (pause {}: {})", pause.scope(), pause.id, pause.reason);
    Ok(ExitCode::SUCCESS)
}

fn time(unix: f64) -> String {
    chrono::DateTime::from_timestamp(unix as i64, 0)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_else(|| unix.to_string())
}

/// The list for people: one line per pause.
fn render(answer: &PausesAnswer) -> String {
    if answer.pauses.is_empty() {
        return "no pause is active\n".to_owned();
    }
    let mut out = format!(
        "{:<16}  {:<20}  {:<30}  {:<12}  {}\n",
        "ID", "UNTIL", "SCOPE", "BY", "REASON"
    );
    for pause in &answer.pauses {
        out.push_str(&format!(
            "{:<16}  {:<20}  {:<30}  {:<12}  {}\n",
            pause.id,
            time(pause.until),
            pause.scope(),
            who_paused(pause),
            pause.reason
        ));
    }
    out
}

/// Who paused, as verified, and what they typed as `by`: `ci (pipeline 4711)`.
fn who_paused(pause: &Pause) -> String {
    let by = pause.by_name.as_deref().or(pause.by.as_deref()).unwrap_or("-");
    match &pause.by_comment {
        Some(comment) => format!("{by} ({comment})"),
        None => by.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_id_end_scope_by_and_reason() {
        let answer = PausesAnswer {
            pauses: vec![Pause {
                id: "ab12".into(),
                plugin: Some("restart-crm".into()),
                matchers: Some(r#"service="crm""#.into()),
                reason: "release 4.2".into(),
                by: Some("alice".into()),
                by_comment: None,
                by_kind: None,
                by_name: None,
                until: 1796238191.0,
                replica: None,
            }],
        };
        let text = render(&answer);
        assert!(text.contains("ab12"), "{text}");
        assert!(text.contains("2026-12-02T19:03:11Z"), "{text}");
        assert!(
            text.contains(r#"plugin restart-crm, alerts service="crm""#),
            "{text}"
        );
        assert!(text.trim_end().ends_with("alice         release 4.2"), "{text}");
        assert_eq!(render(&PausesAnswer { pauses: vec![] }), "no pause is active\n");
    }
}
