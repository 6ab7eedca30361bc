//! `alertmanager_url` as written: one URL (`"http://am:9093"`), or a list,
//! one per member of an Alertmanager HA cluster (`["http://am-0:9093",
//! "http://am-1:9093"]`; in `ALERTMANAGER_URL`, comma-separated). One URL is
//! written back as a string, so a single-URL config reads as it always did.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A list of URLs that may be written as one string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UrlList(pub Vec<String>);

impl UrlList {
    /// The URLs, in the order written.
    pub fn urls(&self) -> &[String] {
        &self.0
    }

    /// `a, b,,c` → `[a, b, c]`: the text form of an environment variable or a flag.
    pub fn parse_comma_separated(text: &str) -> Self {
        Self(super::comma_list(text))
    }
}

impl From<String> for UrlList {
    fn from(url: String) -> Self {
        Self(vec![url])
    }
}

impl From<&str> for UrlList {
    fn from(url: &str) -> Self {
        Self(vec![url.to_owned()])
    }
}

impl From<Vec<String>> for UrlList {
    fn from(urls: Vec<String>) -> Self {
        Self(urls)
    }
}

/// Comma-separated, as `ALERTMANAGER_URL` takes it.
impl fmt::Display for UrlList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl Serialize for UrlList {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => serializer.serialize_str(one),
            many => many.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for UrlList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UrlListVisitor;
        impl<'de> Visitor<'de> for UrlListVisitor {
            type Value = UrlList;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a URL or an array of URLs")
            }
            fn visit_str<E: de::Error>(self, url: &str) -> Result<UrlList, E> {
                Ok(UrlList(vec![url.to_owned()]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UrlList, A::Error> {
                let mut urls = Vec::new();
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                }
                Ok(UrlList(urls))
            }
        }
        deserializer.deserialize_any(UrlListVisitor)
    }
}
