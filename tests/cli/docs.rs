//! The documents the README points at are in the repository.

use crate::support::repo_root;

/// Every relative Markdown link `[text](path)` in README.md names a file that exists, and
/// every mention of DESIGN.md is such a link (the design notes live in docs/).
#[test]
fn readme_links_point_at_files_in_the_repository() {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let mut checked = 0;
    for (at, _) in readme.match_indices("](") {
        let rest = &readme[at + 2..];
        let Some(end) = rest.find(')') else { continue };
        let target = rest[..end].split('#').next().unwrap_or_default();
        if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        assert!(
            repo_root().join(target).exists(),
            "README.md links to {target}, which is not in the repository"
        );
        checked += 1;
    }
    for (at, _) in readme.match_indices("DESIGN.md") {
        let before = &readme[..at];
        assert!(
            before.ends_with("docs/") || before.ends_with("[docs/"),
            "README.md mentions DESIGN.md without its path docs/DESIGN.md at byte {at}"
        );
    }
    assert!(
        readme.contains("docs/DESIGN.md"),
        "README.md never cites docs/DESIGN.md"
    );
    assert!(checked > 0);
}
