//! `autoheal approvals`, `autoheal approve ID` and `autoheal deny ID`: the
//! actions that wait for an operator, through the host's HTTP surface.

use std::process::ExitCode;

use autoheal_api::approvals::{ApprovalAnswer, ApprovalAnswerRequest, ApprovalOutcome, ApprovalsAnswer};

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
    let answer: ApprovalsAnswer = remote
        .fetch(remote.request(reqwest::Method::GET, "/approvals", Scope::Read)?)
        .await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", render(&answer));
    Ok(ExitCode::SUCCESS)
}

/// The list for people: one block per approval.
fn render(answer: &ApprovalsAnswer) -> String {
    if answer.pending.is_empty() {
        return "no action waits for approval\n".to_owned();
    }
    let mut out = String::new();
    for approval in &answer.pending {
        let request = &approval.request;
        out.push_str(&format!(
            "{}  {} on {} (expires in {:?} s)\n",
            request.approval,
            request.plugin,
            request.alertname,
            approval.expires_in_sec.unwrap_or_default()
        ));
        if let Some(progress) = approval.progress() {
            out.push_str(&format!("    {progress}\n"));
        }
        if let Some(by) = &request.requested_by {
            out.push_str(&format!("    requested by {}\n", by.label()));
        }
        for line in &request.preview {
            out.push_str(&format!("    {line}\n"));
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
    let body = ApprovalAnswerRequest {
        by: Some(who(args.by.clone())),
        comment: args.comment.clone(),
    };
    let answer: ApprovalAnswer = remote
        .fetch(
            remote
                .request(reqwest::Method::POST, &path, Scope::Operator)?
                .json(&body),
        )
        .await?;
    if answer.outcome == ApprovalOutcome::Forwarded {
        println!(
            "approval {} {}: forwarded to replica {}, which applies it within a second",
            args.id,
            if grant { "approved" } else { "denied" },
            answer.replica.as_deref().unwrap_or("?")
        );
        return Ok(ExitCode::SUCCESS);
    }
    if answer.outcome == ApprovalOutcome::Recorded {
        println!(
            "approval {} recorded: {} of {} approvals; it runs once enough others approve",
            args.id,
            answer.approvals.unwrap_or_default(),
            answer.approvals_required.unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match answer.decision.flatten() {
        Some(decision) => println!(
            "approval {} granted: {} {} ({})",
            args.id,
            decision.decision.as_str(),
            decision.plugin.as_deref().unwrap_or_default(),
            decision
                .mode
                .map(|m| match m {
                    autoheal_core::mode::ExecutionMode::Real => "real".to_owned(),
                    autoheal_core::mode::ExecutionMode::DryRun => "dry_run".to_owned(),
                })
                .or(decision.detail)
                .unwrap_or_default()
        ),
        None => println!("approval {} denied", args.id),
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed(answer: serde_json::Value) -> ApprovalsAnswer {
        serde_json::from_value(answer).unwrap()
    }

    #[test]
    fn the_list_shows_each_preview_line() {
        let answer = listed(json!({"pending": [{
            "approval": "ab12", "plugin": "restart-crm-api", "alertname": "CrmDown",
            "plugin_version": "1.0.0", "fingerprint": "f", "cooldown_key": "k",
            "cause": "manifest", "expires_at": 2.0, "requested_at": 1.0, "calls": [],
            "alert": {"status": "firing"},
            "expires_in_sec": 899.0,
            "preview": ["inspect crm-api", "restart crm-api — running, up 3h 12m, restart count 2"]
        }]}));
        let text = render(&answer);
        assert!(
            text.starts_with("ab12  restart-crm-api on CrmDown (expires in 899.0 s)\n"),
            "{text}"
        );
        assert!(text.contains("    restart crm-api — running, up 3h 12m, restart count 2\n"));
        assert!(
            !text.contains("approvals"),
            "one approval required, none given: {text}"
        );
        let two = listed(json!({"pending": [{
            "approval": "ab12", "plugin": "restart-crm-api", "alertname": "CrmDown",
            "plugin_version": "1.0.0", "fingerprint": "f", "cooldown_key": "k",
            "cause": "manifest", "expires_at": 2.0, "requested_at": 1.0, "calls": [],
            "alert": {"status": "firing"}, "preview": [],
            "approvals_required": 2,
            "approved_by": [{"id": "alice-sub", "kind": "person", "name": "Alice"}],
            "requested_by": {"id": "ci", "kind": "token"}
        }]}));
        let text = render(&two);
        assert!(text.contains("    1 of 2 approvals: Alice\n"), "{text}");
        assert!(text.contains("    requested by ci\n"), "{text}");
        assert_eq!(
            render(&listed(json!({"pending": []}))),
            "no action waits for approval\n"
        );
    }
}
