//! `tidings init DIR`: a new service's files, from what the binary ships.

use std::path::Path;

use anyhow::Context;

use crate::config::{self, EMBEDDED_LISTS_TOML};

/// Writes DIR/lists.toml (the shipped sample for `domain` and `base_url`,
/// every post moderated), DIR/templates/ (the shipped templates, to edit)
/// and DIR/data/ (mode 0750), checks the configuration, and prints what to
/// do next. Nothing that exists is replaced.
pub fn init(dir: &Path, domain: &str, base_url: &str) -> anyhow::Result<()> {
    anyhow::ensure!(
        !domain.is_empty() && !domain.contains(['@', '/', ' ', '"']),
        "--domain {domain:?} is not a mail domain (e.g. lists.example.org)"
    );
    let base_url = if base_url.ends_with('/') {
        base_url.to_string()
    } else {
        format!("{base_url}/")
    };
    url::Url::parse(&base_url).with_context(|| format!("--base-url {base_url:?} is not a URL"))?;
    std::fs::create_dir_all(dir).with_context(|| format!("making {}", dir.display()))?;
    let config_path = dir.join("lists.toml");
    anyhow::ensure!(
        !config_path.exists(),
        "{} exists already; nothing was changed",
        config_path.display()
    );
    let text = EMBEDDED_LISTS_TOML
        .replace("lists.example.org", domain)
        .replacen(
            "base_url = \"http://127.0.0.1:8080/\"",
            &format!("base_url = \"{base_url}\""),
            1,
        )
        .replacen(
            "# published. This sample is open so that a first try publishes; a list may\n# say otherwise with its own posting = \"...\".\nposting = \"open\"",
            "# published. A list may say otherwise with its own posting = \"...\".\nposting = \"moderated\"",
            1,
        );
    let templates = dir.join("templates");
    let mut written = 0;
    for (name, bytes) in crate::templates::shipped_files() {
        let path = templates.join(name);
        if path.exists() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&path, bytes).with_context(|| format!("writing {}", path.display()))?;
        written += 1;
    }
    let data = dir.join("data");
    std::fs::create_dir_all(&data)?;
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750))?;
    }
    std::fs::write(&config_path, &text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    // What was written must load, or the sample and this code disagree.
    config::load(Some(&config_path))?;
    println!(
        "wrote {} (lists at {domain}, pages at {base_url}), {written} templates under {}, and {}\n\n\
         Next:\n  \
         1. Edit {}: [site] operator, editors and moderators, and the lists you run; then\n     \
         tidings --config {} check\n  \
         2. Hand the domain's mail to tidings: docs/postfix.md (LMTP transport or pipe).\n  \
         3. Run the daemon: tidings --config {} serve.",
        config_path.display(),
        templates.display(),
        data.display(),
        config_path.display(),
        config_path.display(),
        config_path.display(),
    );
    Ok(())
}
