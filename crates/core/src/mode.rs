//! Whether an action touches the world, and why not.

use serde::{Deserialize, Serialize};

/// Whether capability calls with side effects really happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExecutionMode {
    /// Side effects are carried out.
    Real,
    /// Side-effecting calls are recorded and answered `ok`; reads still read.
    DryRun,
}

impl ExecutionMode {
    /// The name on the wire and in the CLI's output: `real` or `dry_run`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::DryRun => "dry_run",
        }
    }

    /// The original system's rule: real only when enabled and not in
    /// dry-run; otherwise which switch holds actions back.
    pub fn from_switches(enabled: bool, dry_run: bool) -> (ExecutionMode, Option<DryRunReason>) {
        if !enabled {
            (ExecutionMode::DryRun, Some(DryRunReason::Disabled))
        } else if dry_run {
            (ExecutionMode::DryRun, Some(DryRunReason::DryRun))
        } else {
            (ExecutionMode::Real, None)
        }
    }
}

/// Why the host runs actions in dry-run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DryRunReason {
    /// The kill switch is off (`enabled = false`).
    Disabled,
    /// `dry_run = true`.
    DryRun,
    /// The action waits for an operator's approval: this run is its preview.
    Approval,
    /// The host runs as one of a cluster and the cluster (etcd) could not
    /// be asked for the action's claim: no real action without one.
    ClusterUnavailable,
}

impl DryRunReason {
    /// The name in events and logs, e.g. `disabled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::DryRun => "dry_run",
            Self::Approval => "approval",
            Self::ClusterUnavailable => "cluster_unavailable",
        }
    }

    /// Whether an operator chose it (the kill switch off, `dry_run = true`),
    /// rather than the host forcing it on one action (an approval's
    /// preview, no claim in a cluster). Only a chosen dry-run's effect is
    /// watched: a forced one stands in for an action that did not happen.
    pub fn chosen_by_operator(self) -> bool {
        matches!(self, Self::Disabled | Self::DryRun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_wire_names() {
        for mode in [ExecutionMode::Real, ExecutionMode::DryRun] {
            assert_eq!(serde_json::to_value(mode).unwrap(), mode.as_str());
        }
    }

    #[test]
    fn only_the_switches_dry_runs_are_the_operators_choice() {
        let chosen: Vec<bool> = [
            DryRunReason::Disabled,
            DryRunReason::DryRun,
            DryRunReason::Approval,
            DryRunReason::ClusterUnavailable,
        ]
        .map(DryRunReason::chosen_by_operator)
        .into();
        assert_eq!(chosen, [true, true, false, false]);
        // Whatever the switches say is the operator's.
        for (enabled, dry_run) in [(false, false), (false, true), (true, true)] {
            let (_, reason) = ExecutionMode::from_switches(enabled, dry_run);
            assert!(reason.unwrap().chosen_by_operator());
        }
    }
}
