//! Secrets the host holds for plugins (`[secrets]` of its config), and the
//! scrubbing of their values out of whatever a plugin or the trail would
//! see: a plugin names a secret, the host puts it into a request, and its
//! value (as-is, base64 or URL-encoded) comes back as `[secret NAME]`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};

/// Shortest value a secret may have: a shorter one would be scrubbed out of
/// unrelated text (and guessed).
pub const MIN_SECRET_BYTES: usize = 8;

/// The host's secrets by name. Its `Debug` never shows a value.
#[derive(Clone, Default)]
pub struct Secrets {
    values: BTreeMap<String, String>,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.values.keys()).finish()
    }
}

impl Secrets {
    /// Secrets with these names and values (the config checks them first).
    pub fn new(values: BTreeMap<String, String>) -> Self {
        Self { values }
    }

    /// The value of `name`, if the host holds it.
    pub(crate) fn value(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// The names the host holds.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// A scrubber of every value the host holds.
    pub(crate) fn scrubber(&self) -> Scrubber {
        let mut forms = Vec::new();
        for (name, value) in &self.values {
            let mark = format!("[secret {name}]").into_bytes();
            let bytes = value.as_bytes();
            let mut spellings = vec![
                bytes.to_vec(),
                STANDARD.encode(bytes).into_bytes(),
                STANDARD_NO_PAD.encode(bytes).into_bytes(),
                URL_SAFE.encode(bytes).into_bytes(),
                URL_SAFE_NO_PAD.encode(bytes).into_bytes(),
                percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
                    .into_bytes(),
                form_urlencoded::byte_serialize(bytes)
                    .collect::<String>()
                    .into_bytes(),
            ];
            spellings.sort();
            spellings.dedup();
            forms.extend(spellings.into_iter().map(|s| (s, mark.clone())));
        }
        // Longest first, so that a spelling containing another is replaced whole.
        forms.sort_by_key(|(form, _)| std::cmp::Reverse(form.len()));
        Scrubber { forms }
    }
}

/// Replaces every known spelling of every secret by `[secret NAME]`.
#[derive(Clone, Default)]
pub(crate) struct Scrubber {
    forms: Vec<(Vec<u8>, Vec<u8>)>,
}

impl Scrubber {
    /// `bytes` with every spelling of a secret replaced.
    pub(crate) fn bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (form, mark) in &self.forms {
            if form.is_empty() || out.len() < form.len() {
                continue;
            }
            let mut replaced = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(form) {
                    replaced.extend_from_slice(mark);
                    i += form.len();
                } else {
                    replaced.push(out[i]);
                    i += 1;
                }
            }
            out = replaced;
        }
        out
    }

    /// A body cut at a bound: scrubbed, and then whatever its end holds of
    /// the start of a secret's spelling dropped, so that a cut never
    /// leaves a secret's first bytes behind.
    pub(crate) fn cut_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = self.bytes(bytes);
        let mut partial = 0;
        for (form, _) in &self.forms {
            for k in (1..form.len()).rev() {
                if k > partial && out.ends_with(&form[..k]) {
                    partial = k;
                    break;
                }
            }
        }
        out.truncate(out.len() - partial);
        out
    }

    /// `text` with every spelling of a secret replaced.
    pub(crate) fn text(&self, text: &str) -> String {
        if self.forms.is_empty() {
            return text.to_owned();
        }
        String::from_utf8_lossy(&self.bytes(text.as_bytes())).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets() -> Secrets {
        Secrets::new(BTreeMap::from([(
            "TOKEN".to_owned(),
            "s3cr3t/v4lue+x?".to_owned(),
        )]))
    }

    #[test]
    fn every_spelling_of_a_secret_is_scrubbed() {
        let scrub = secrets().scrubber();
        let value = "s3cr3t/v4lue+x?";
        for spelled in [
            value.to_owned(),
            STANDARD.encode(value),
            URL_SAFE_NO_PAD.encode(value),
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string(),
            form_urlencoded::byte_serialize(value.as_bytes()).collect(),
        ] {
            let text = format!("Authorization: Bearer {spelled}; again {spelled}.");
            let scrubbed = scrub.text(&text);
            assert_eq!(
                scrubbed, "Authorization: Bearer [secret TOKEN]; again [secret TOKEN].",
                "{spelled}"
            );
        }
        assert_eq!(scrub.text("nothing secret"), "nothing secret");
        assert_eq!(format!("{:?}", secrets()), "{\"TOKEN\"}");
    }

    #[test]
    fn a_cut_leaves_no_start_of_a_secret() {
        let scrub = secrets().scrubber();
        assert_eq!(scrub.cut_bytes(b"body: s3cr3t/v4"), b"body: ");
        assert_eq!(
            scrub.cut_bytes(b"body: s3cr3t/v4lue+x? and"),
            b"body: [secret TOKEN] and"
        );
        assert_eq!(scrub.cut_bytes(b"plain"), b"plain");
    }
}
