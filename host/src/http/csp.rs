//! The Content-Security-Policy of HTML answers (the console). The console
//! is one self-contained page: its one inline `<script>` and `<style>` are
//! allowed by their SHA-256 and nothing else inline runs, so a value that
//! reaches the page (a replica URL from etcd, a label) cannot run as
//! script even if it slipped past `safeLink`. The page fetches only this
//! host (a whole-cluster view is merged here, not fetched from the other
//! replicas), so `connect-src 'self'` is all it needs.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use sha2::{Digest, Sha256};

/// The console page.
pub(super) const CONSOLE_HTML: &str = include_str!("../../../web/console.html");

/// The policy for [`CONSOLE_HTML`].
static POLICY: LazyLock<HeaderValue> =
    LazyLock::new(|| HeaderValue::from_str(&policy(CONSOLE_HTML)).expect("a policy is a valid header value"));

/// `'sha256-…'` of the text of every `<tag>…</tag>` in `html`.
fn inline_hashes(html: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut hashes = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let body = &rest[start + open.len()..];
        let Some(end) = body.find(&close) else { break };
        let digest = Sha256::digest(&body.as_bytes()[..end]);
        hashes.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
        rest = &body[end + close.len()..];
    }
    hashes
}

fn policy(html: &str) -> String {
    format!(
        "default-src 'self'; script-src 'self' {}; style-src 'self' {}; img-src 'self' data:; \
         connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'",
        inline_hashes(html, "script").join(" "),
        inline_hashes(html, "style").join(" "),
    )
}

/// Adds the policy to an HTML answer that has none.
pub(super) async fn on_html(mut response: Response) -> Response {
    let html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html && !response.headers().contains_key(header::CONTENT_SECURITY_POLICY) {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, POLICY.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_console_inline_script_and_style_are_hashed_and_nothing_else_is_allowed() {
        assert_eq!(inline_hashes(CONSOLE_HTML, "script").len(), 1);
        assert_eq!(inline_hashes(CONSOLE_HTML, "style").len(), 1);
        let policy = policy(CONSOLE_HTML);
        assert!(!policy.contains("unsafe"), "{policy}");
        assert!(policy.contains("frame-ancestors 'none'"), "{policy}");
        assert_eq!(
            inline_hashes("<script>alert(1)</script>", "script"),
            ["'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI='"]
        );
    }
}
