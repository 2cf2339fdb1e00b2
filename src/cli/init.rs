//! `tidings init DIR`: a new service's files, from what the binary ships.

use std::io::Write;
use std::path::Path;

use anyhow::Context;

use crate::config::{self, Config, EMBEDDED_LISTS_TOML};

/// Writes DIR/lists.toml (the shipped sample for `domain` and `base_url`,
/// every post moderated), DIR/templates/ (the shipped templates, to edit),
/// DIR/tidings.service (the systemd unit of docs/systemd) and DIR/data/
/// (mode 0750), checks the configuration, and prints what to do next: the
/// Postfix lines for this domain and listener, and the commands that
/// install the unit. Nothing that exists is replaced.
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
    // The commands printed at the end work from any directory.
    let dir = std::fs::canonicalize(dir).with_context(|| format!("finding {}", dir.display()))?;
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
    let unit = dir.join(UNIT_NAME);
    let unit_written = !unit.exists();
    if unit_written {
        std::fs::write(&unit, SERVICE_UNIT)
            .with_context(|| format!("writing {}", unit.display()))?;
    }
    std::fs::write(&config_path, &text)
        .with_context(|| format!("writing {}", config_path.display()))?;
    // What was written must load, or the sample and this code disagree.
    let config = config::load(Some(&config_path))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "wrote {} (lists at {domain}, pages at {base_url}), {written} templates under {}, {}\
         and {}",
        config_path.display(),
        templates.display(),
        match unit_written {
            true => format!("the systemd unit {}, ", unit.display()),
            false => String::new(),
        },
        data.display(),
    )?;
    write!(out, "{}", next_steps(&config, &config_path, &unit))?;
    Ok(())
}

/// The name of the daemon's unit, as systemd and docs/systemd know it.
const UNIT_NAME: &str = "tidings.service";

/// The daemon's unit, as docs/systemd ships it (tests/systemd.rs checks it
/// with systemd-analyze).
const SERVICE_UNIT: &str = include_str!("../../docs/systemd/tidings.service");

/// Where the unit runs tidings from (its ExecStart) and where it reads
/// lists.toml (its TIDINGS_CONFIG).
const UNIT_BINARY: &str = "/usr/local/bin/tidings";
const UNIT_CONFIG_DIR: &str = "/etc/tidings";

/// What to do after `init`: check the configuration, the Postfix lines that
/// hand the domain to the LMTP listener ([`postfix_snippet`]), and the
/// commands that install the systemd unit at `unit` and its user.
fn next_steps(config: &Config, config_path: &Path, unit: &Path) -> String {
    let dir = config_path.parent().unwrap_or(Path::new("."));
    let config_path = config_path.display();
    let mut install = vec![
        "useradd --system --home-dir /var/lib/tidings --shell /usr/sbin/nologin tidings"
            .to_string(),
    ];
    match std::env::current_exe() {
        Ok(binary) if binary == Path::new(UNIT_BINARY) => {}
        Ok(binary) => install.push(format!(
            "install -m 0755 {} {UNIT_BINARY}",
            binary.display()
        )),
        Err(_) => install.push(format!(
            "install -m 0755 target/release/tidings {UNIT_BINARY}"
        )),
    }
    install.push(format!("install -d -m 0755 {UNIT_CONFIG_DIR}"));
    if dir != Path::new(UNIT_CONFIG_DIR) {
        install.push(format!(
            "cp -r {config_path} {} {UNIT_CONFIG_DIR}/",
            config.site.templates_dir.display()
        ));
    }
    install.push(format!(
        "install -m 0644 {} /etc/systemd/system/",
        unit.display()
    ));
    install.push("systemctl daemon-reload && systemctl enable --now tidings".to_string());
    let install: String = install
        .iter()
        .map(|line| format!("       {line}\n"))
        .collect();
    format!(
        "\nNext:\n  \
         1. Edit {config_path}: [site] operator, editors and moderators, and the lists\n     \
         you run; then\n\n       \
         tidings --config {config_path} check\n\n  \
         2. Have Postfix hand the mail of {domain} to tidings' LMTP listener\n     \
         ([listen] lmtp); docs/postfix.md says why each line is there, and how to use\n     \
         a pipe instead.\n\n\
         {postfix}\n  \
         3. Run the daemon under systemd, as root:\n\n\
         {install}\n     \
         The unit may write only /var/lib/tidings: in {UNIT_CONFIG_DIR}/lists.toml set\n     \
         data_dir = \"/var/lib/tidings/data\", feeds_dir = \"/var/lib/tidings/feeds\" and\n     \
         site_dir = \"/var/lib/tidings/site\" first. Logs: journalctl -u tidings.\n",
        domain = config.site.domain,
        postfix = postfix_snippet(config),
    )
}

/// The Postfix configuration that hands the mail of `config`'s domain to
/// its LMTP listener: docs/postfix.md's LMTP section, for this domain,
/// listener and size limit, indented to paste from.
fn postfix_snippet(config: &Config) -> String {
    let domain = &config.site.domain;
    let mut lmtp = config.listen.lmtp;
    // Postfix connects to the listener: a wildcard address is reached on
    // loopback.
    if lmtp.ip().is_unspecified() {
        lmtp.set_ip(match lmtp {
            std::net::SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    let size = config.ingest.max_message_bytes;
    let indented = |text: String| -> String {
        text.lines()
            .map(|line| format!("       {line}\n"))
            .collect()
    };
    let main_cf = indented(format!(
        "relay_domains = {domain}\n\
         transport_maps = hash:/etc/postfix/transport\n\
         smtpd_recipient_restrictions =\n    \
         permit_mynetworks,\n    \
         reject_unauth_destination,\n    \
         reject_unverified_recipient\n\
         unverified_recipient_reject_code = 550\n\
         message_size_limit = {size}\n\
         lmtp_send_xforward_command = yes\n\
         lmtp_destination_concurrency_limit = 20"
    ));
    let transport = indented(format!("{domain}   lmtp:inet:{lmtp}"));
    format!(
        "     In /etc/postfix/main.cf:\n\n{main_cf}\n     \
         In /etc/postfix/transport:\n\n{transport}\n     \
         Then, as root:\n\n       \
         postmap /etc/postfix/transport && postfix reload\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_postfix_lines_name_the_domain_and_reach_the_listener() {
        let mut config = config::shipped();
        config.site.domain = "news.example".into();
        config.listen.lmtp = "0.0.0.0:2424".parse().unwrap();
        let snippet = postfix_snippet(&config);
        assert!(
            snippet.contains("\n       relay_domains = news.example\n"),
            "{snippet}"
        );
        // A listener on every address is reached on loopback.
        assert!(
            snippet.contains("\n       news.example   lmtp:inet:127.0.0.1:2424\n"),
            "{snippet}"
        );
        config.listen.lmtp = "[::]:2424".parse().unwrap();
        assert!(postfix_snippet(&config).contains("lmtp:inet:[::1]:2424"));
    }
}
