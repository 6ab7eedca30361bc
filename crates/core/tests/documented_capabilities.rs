//! Every capability call a plugin can make has its row in README's
//! "Capability reference" table: a capability added without saying what the
//! manifest must allow, whether it is a read or an effect, and its bounds
//! fails here.

use autoheal_core::invocation::Capability;

#[test]
fn every_capability_has_its_row_in_the_readme_reference() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
    let section = readme
        .split("### Capability reference")
        .nth(1)
        .expect("README has a \"Capability reference\" section");
    let rows: Vec<&str> = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2)
        .collect();
    let documented: Vec<String> = rows
        .iter()
        .filter_map(|row| row.split('|').nth(1))
        .map(|cell| cell.trim().trim_matches('`').to_owned())
        .collect();
    let known: Vec<&str> = Capability::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        documented, known,
        "README's capability rows, in the order of Capability::ALL"
    );
    for (row, capability) in rows.iter().zip(Capability::ALL) {
        let kind = row.split('|').nth(3).unwrap_or_default().trim();
        let expected = if capability.is_effect() { "effect" } else { "read" };
        assert_eq!(kind, expected, "{row}");
    }
}
