//! Which container an alert is about: the `container` / `container_label`
//! config keys.
//!
//! A plugin that acts on one container usually lets its manifest say which,
//! in one of two ways, and [`Target`] reads and validates both:
//!
//! - `container = "crm-api"`: always this container;
//! - `container_label = "name"`: the value of this alert label, so one
//!   manifest can serve alerts about several containers.
//!
//! Exactly one of the two must be set, and not blank.
//!
//! ```
//! use autoheal_sdk::Config;
//! use autoheal_sdk::target::Target;
//! use autoheal_sdk::testing::firing;
//!
//! let config: Config = [("container_label", "name")].into_iter().collect();
//! let target = Target::from_config(&config)?;
//! assert_eq!(target, Target::FromLabel("name".into()));
//! assert_eq!(target.resolve(&firing(&[("name", "billing")]))?, "billing");
//! # Ok::<(), String>(())
//! ```
//!
//! Whatever container a plugin ends up with must also be listed under
//! `[capabilities] containers` in its manifest, or the host denies the calls.

use crate::{Alert, Config};

/// Where the name of the container comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `container = "..."`: always this container.
    Fixed(String),
    /// `container_label = "..."`: the value of this alert label.
    FromLabel(String),
}

impl Target {
    /// Read `container` or `container_label` from the plugin's config.
    ///
    /// Exactly one of them must be set; surrounding blanks are trimmed and a
    /// blank value is an error naming the key. Other keys are ignored.
    pub fn from_config(config: &Config) -> Result<Target, String> {
        match (config.get("container"), config.get("container_label")) {
            (Some(_), Some(_)) => Err(
                "config keys `container` and `container_label` are mutually exclusive; set only one"
                    .to_string(),
            ),
            (None, None) => Err(
                "config needs `container` (a container name) or `container_label` (an alert label holding it)"
                    .to_string(),
            ),
            (Some(name), None) => Ok(Target::Fixed(non_empty("container", name)?)),
            (None, Some(label)) => Ok(Target::FromLabel(non_empty("container_label", label)?)),
        }
    }

    /// The container `alert` is about.
    ///
    /// For [`FromLabel`](Target::FromLabel), the label's value with
    /// surrounding blanks trimmed; an alert without the label, or with a blank
    /// value, is an error naming the label.
    pub fn resolve(&self, alert: &Alert) -> Result<String, String> {
        match self {
            Target::Fixed(name) => Ok(name.clone()),
            Target::FromLabel(label) => match alert.label(label) {
                Some(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
                _ => Err(format!(
                    "alert has no label `{label}` to take the container name from (config `container_label`)"
                )),
            },
        }
    }
}

/// `value` trimmed, or an error naming `key` if that leaves nothing.
fn non_empty(key: &str, value: &str) -> Result<String, String> {
    let value = value.trim();
    if value.is_empty() {
        Err(format!("config key `{key}` must not be empty"))
    } else {
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{config, firing};

    #[test]
    fn fixed_container() {
        let t = Target::from_config(&config(&[("container", "crm-api"), ("min_uptime_sec", "5")])).unwrap();
        assert_eq!(t, Target::Fixed("crm-api".into()));
        assert_eq!(t.resolve(&firing(&[])), Ok("crm-api".into()));
        assert_eq!(
            t.resolve(&firing(&[("container", "other")])),
            Ok("crm-api".into())
        );
        let padded = Target::from_config(&config(&[("container", " crm-api ")])).unwrap();
        assert_eq!(padded, Target::Fixed("crm-api".into()));
    }

    #[test]
    fn container_from_label() {
        let t =
            Target::from_config(&config(&[("container_label", "name"), ("min_uptime_sec", "300")])).unwrap();
        assert_eq!(t, Target::FromLabel("name".into()));
        assert_eq!(t.resolve(&firing(&[("name", "billing")])), Ok("billing".into()));
        assert_eq!(t.resolve(&firing(&[("name", " billing ")])), Ok("billing".into()));
        let err = t.resolve(&firing(&[("alertname", "X")])).unwrap_err();
        assert!(err.contains("`name`"), "{err}");
        let err = t.resolve(&firing(&[("name", "")])).unwrap_err();
        assert!(err.contains("`name`"), "{err}");
        assert_eq!(
            t.resolve(&firing(&[("name", " ")])),
            Err(
                "alert has no label `name` to take the container name from (config `container_label`)".into()
            )
        );
    }

    #[test]
    fn exactly_one_target_key() {
        let both = Target::from_config(&config(&[("container", "a"), ("container_label", "b")])).unwrap_err();
        assert!(both.contains("mutually exclusive"), "{both}");
        let neither = Target::from_config(&config(&[("min_uptime_sec", "5")])).unwrap_err();
        assert!(
            neither.contains("`container`") && neither.contains("`container_label`"),
            "{neither}"
        );
        let empty = Target::from_config(&config(&[("container", " ")])).unwrap_err();
        assert_eq!(empty, "config key `container` must not be empty");
        let empty = Target::from_config(&config(&[("container_label", "")])).unwrap_err();
        assert_eq!(empty, "config key `container_label` must not be empty");
    }
}
