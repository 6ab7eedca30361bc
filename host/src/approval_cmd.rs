//! `autoheal approvals`, `autoheal approve ID` and `autoheal deny ID`: the
//! actions that wait for an operator, through the host's HTTP surface.

use std::process::ExitCode;

use serde_json::{Value, json};

use crate::ops_cmd::{Remote, Scope, who};

/// `autoheal approvals`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    remote: Remote,
    /// Print `GET /approvals` as JSON.
    #[arg(long)]
    json: bool,
}

/// `autoheal approve|deny`.
#[derive(clap::Args)]
pub struct AnswerArgs {
    #[command(flatten)]
    remote: Remote,
    /// The approval's id (`autoheal approvals` lists them).
    id: String,
    /// Who decides, for the audit trail [default: $USER].
    #[arg(long)]
    by: Option<String>,
    /// Why, for the audit trail.
    #[arg(long)]
    comment: Option<String>,
}

/// `autoheal approvals`: what waits, with each preview.
pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let remote = &args.remote;
    let answer = remote
        .call(remote.request(reqwest::Method::GET, "/approvals", Scope::Read)?)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&answer));
    Ok(ExitCode::SUCCESS)
}

/// The list for people: one block per approval.
fn render(answer: &Value) -> String {
    let pending = answer["pending"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    if pending.is_empty() {
        return "no action waits for approval\n".to_owned();
    }
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let mut out = String::new();
    for approval in pending {
        out.push_str(&format!(
            "{}  {} on {} (expires in {} s)\n",
            text(&approval["approval"]),
            text(&approval["plugin"]),
            text(&approval["alertname"]),
            approval["expires_in_sec"]
        ));
        for line in approval["preview"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            out.push_str(&format!("    {}\n", text(line)));
        }
    }
    out
}

/// `autoheal approve ID` (`grant`) or `autoheal deny ID`.
pub async fn answer(args: AnswerArgs, grant: bool) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        !args.id.is_empty() && args.id.chars().all(|c| c.is_ascii_alphanumeric()),
        "{:?} is not an approval id (letters and digits; `autoheal approvals` lists them)",
        args.id
    );
    let remote = &args.remote;
    let verb = if grant { "approve" } else { "deny" };
    let path = format!("/approvals/{}/{verb}", args.id);
    let body = json!({ "by": who(args.by.clone()), "comment": args.comment });
    let answer = remote
        .call(
            remote
                .request(reqwest::Method::POST, &path, Scope::Operator)?
                .json(&body),
        )
        .await?;
    if answer["outcome"] == "forwarded" {
        println!(
            "approval {} {}: forwarded to replica {}, which applies it within a second",
            args.id,
            if grant { "approved" } else { "denied" },
            answer["replica"].as_str().unwrap_or("?")
        );
        return Ok(ExitCode::SUCCESS);
    }
    let decision = &answer["decision"];
    match decision.is_object() {
        true => println!(
            "approval {} granted: {} {} ({})",
            args.id,
            decision["decision"].as_str().unwrap_or_default(),
            decision["plugin"].as_str().unwrap_or_default(),
            decision["mode"]
                .as_str()
                .or(decision["detail"].as_str())
                .unwrap_or_default()
        ),
        false => println!("approval {} denied", args.id),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_each_preview_line() {
        let answer = json!({"pending": [{
            "approval": "ab12", "plugin": "restart-crm-api", "alertname": "CrmDown",
            "expires_in_sec": 899.0,
            "preview": ["inspect crm-api", "restart crm-api — running, up 3h 12m, restart count 2"]
        }]});
        let text = render(&answer);
        assert!(
            text.starts_with("ab12  restart-crm-api on CrmDown (expires in 899.0 s)\n"),
            "{text}"
        );
        assert!(text.contains("    restart crm-api — running, up 3h 12m, restart count 2\n"));
        assert_eq!(render(&json!({"pending": []})), "no action waits for approval\n");
    }
}
