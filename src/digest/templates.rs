//! The words of a digest: labels, masthead, footer and the HTML layout,
//! one set per list language under `templates/digest/LANG/`, English as the
//! fallback key by key and file by file (minijinja).
//!
//! The shipped templates are built into the binary, so digests speak every
//! shipped language on a fresh machine; files in the configured
//! `templates_dir` replace or add to them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use anyhow::Context;
use minijinja::Environment;
use serde::Serialize;

/// The templates shipped with tidings, by name under `templates/`.
const SHIPPED: &[(&str, &str)] = &[
    (
        "digest/digest.html",
        include_str!("../../templates/digest/digest.html"),
    ),
    (
        "digest/en/labels.toml",
        include_str!("../../templates/digest/en/labels.toml"),
    ),
    (
        "digest/en/masthead.txt",
        include_str!("../../templates/digest/en/masthead.txt"),
    ),
    (
        "digest/en/footer.txt",
        include_str!("../../templates/digest/en/footer.txt"),
    ),
    (
        "digest/el/labels.toml",
        include_str!("../../templates/digest/el/labels.toml"),
    ),
    (
        "digest/el/masthead.txt",
        include_str!("../../templates/digest/el/masthead.txt"),
    ),
    (
        "digest/el/footer.txt",
        include_str!("../../templates/digest/el/footer.txt"),
    ),
    (
        "digest/ru/labels.toml",
        include_str!("../../templates/digest/ru/labels.toml"),
    ),
    (
        "digest/ru/masthead.txt",
        include_str!("../../templates/digest/ru/masthead.txt"),
    ),
    (
        "digest/ru/footer.txt",
        include_str!("../../templates/digest/ru/footer.txt"),
    ),
    (
        "digest/zh/labels.toml",
        include_str!("../../templates/digest/zh/labels.toml"),
    ),
    (
        "digest/zh/masthead.txt",
        include_str!("../../templates/digest/zh/masthead.txt"),
    ),
    (
        "digest/zh/footer.txt",
        include_str!("../../templates/digest/zh/footer.txt"),
    ),
    (
        "digest/tr/labels.toml",
        include_str!("../../templates/digest/tr/labels.toml"),
    ),
    (
        "digest/tr/masthead.txt",
        include_str!("../../templates/digest/tr/masthead.txt"),
    ),
    (
        "digest/tr/footer.txt",
        include_str!("../../templates/digest/tr/footer.txt"),
    ),
    (
        "digest/es/labels.toml",
        include_str!("../../templates/digest/es/labels.toml"),
    ),
    (
        "digest/es/masthead.txt",
        include_str!("../../templates/digest/es/masthead.txt"),
    ),
    (
        "digest/es/footer.txt",
        include_str!("../../templates/digest/es/footer.txt"),
    ),
    (
        "digest/fr/labels.toml",
        include_str!("../../templates/digest/fr/labels.toml"),
    ),
    (
        "digest/fr/masthead.txt",
        include_str!("../../templates/digest/fr/masthead.txt"),
    ),
    (
        "digest/fr/footer.txt",
        include_str!("../../templates/digest/fr/footer.txt"),
    ),
    (
        "digest/de/labels.toml",
        include_str!("../../templates/digest/de/labels.toml"),
    ),
    (
        "digest/de/masthead.txt",
        include_str!("../../templates/digest/de/masthead.txt"),
    ),
    (
        "digest/de/footer.txt",
        include_str!("../../templates/digest/de/footer.txt"),
    ),
    (
        "digest/ca/labels.toml",
        include_str!("../../templates/digest/ca/labels.toml"),
    ),
    (
        "digest/ca/masthead.txt",
        include_str!("../../templates/digest/ca/masthead.txt"),
    ),
    (
        "digest/ca/footer.txt",
        include_str!("../../templates/digest/ca/footer.txt"),
    ),
    (
        "digest/nl/labels.toml",
        include_str!("../../templates/digest/nl/labels.toml"),
    ),
    (
        "digest/nl/masthead.txt",
        include_str!("../../templates/digest/nl/masthead.txt"),
    ),
    (
        "digest/nl/footer.txt",
        include_str!("../../templates/digest/nl/footer.txt"),
    ),
    (
        "digest/it/labels.toml",
        include_str!("../../templates/digest/it/labels.toml"),
    ),
    (
        "digest/it/masthead.txt",
        include_str!("../../templates/digest/it/masthead.txt"),
    ),
    (
        "digest/it/footer.txt",
        include_str!("../../templates/digest/it/footer.txt"),
    ),
    (
        "digest/pl/labels.toml",
        include_str!("../../templates/digest/pl/labels.toml"),
    ),
    (
        "digest/pl/masthead.txt",
        include_str!("../../templates/digest/pl/masthead.txt"),
    ),
    (
        "digest/pl/footer.txt",
        include_str!("../../templates/digest/pl/footer.txt"),
    ),
    (
        "digest/pt/labels.toml",
        include_str!("../../templates/digest/pt/labels.toml"),
    ),
    (
        "digest/pt/masthead.txt",
        include_str!("../../templates/digest/pt/masthead.txt"),
    ),
    (
        "digest/pt/footer.txt",
        include_str!("../../templates/digest/pt/footer.txt"),
    ),
    (
        "digest/fi/labels.toml",
        include_str!("../../templates/digest/fi/labels.toml"),
    ),
    (
        "digest/fi/masthead.txt",
        include_str!("../../templates/digest/fi/masthead.txt"),
    ),
    (
        "digest/fi/footer.txt",
        include_str!("../../templates/digest/fi/footer.txt"),
    ),
    (
        "digest/sv/labels.toml",
        include_str!("../../templates/digest/sv/labels.toml"),
    ),
    (
        "digest/sv/masthead.txt",
        include_str!("../../templates/digest/sv/masthead.txt"),
    ),
    (
        "digest/sv/footer.txt",
        include_str!("../../templates/digest/sv/footer.txt"),
    ),
];

/// The language whose templates every other falls back to.
pub const FALLBACK: &str = "en";

/// Loaded digest templates.
pub struct Templates {
    env: Environment<'static>,
    labels: HashMap<String, BTreeMap<String, String>>,
}

/// The labels of one language, English where it has none.
#[derive(Debug, Clone, Serialize)]
pub struct Labels {
    /// Template of the subject; sees title, volume and issue.
    pub subject: String,
    /// Heading of the table of contents.
    pub topics: String,
    /// Description of the masthead part.
    pub masthead: String,
    /// Description of the part holding the posts.
    pub posts: String,
    /// Description of the footer part.
    pub footer: String,
    /// Link text to a post's page.
    pub read_more: String,
    /// Link text back to the table of contents (HTML).
    pub back_to_topics: String,
    /// Said when a digest has no posts.
    pub no_posts: String,
}

impl Templates {
    /// The shipped templates alone.
    pub fn shipped() -> Templates {
        Self::from_sources(
            SHIPPED
                .iter()
                .map(|(name, text)| (name.to_string(), text.to_string()))
                .collect(),
        )
        .expect("shipped templates are valid")
    }

    /// The shipped templates, with the files under `dir/digest/` replacing
    /// or adding to them.
    pub fn load(dir: &Path) -> anyhow::Result<Templates> {
        let mut sources: BTreeMap<String, String> = SHIPPED
            .iter()
            .map(|(name, text)| (name.to_string(), text.to_string()))
            .collect();
        let root = dir.join("digest");
        if root.is_dir() {
            let mut stack = vec![root];
            while let Some(folder) = stack.pop() {
                let entries = std::fs::read_dir(&folder)
                    .with_context(|| format!("reading templates in {}", folder.display()))?;
                for entry in entries {
                    let path = entry?.path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let name = path
                        .strip_prefix(dir)
                        .expect("under dir")
                        .to_string_lossy()
                        .replace('\\', "/");
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading template {}", path.display()))?;
                    sources.insert(name, text);
                }
            }
        }
        Self::from_sources(sources)
    }

    fn from_sources(sources: BTreeMap<String, String>) -> anyhow::Result<Templates> {
        let mut env = Environment::new();
        env.set_keep_trailing_newline(true);
        let mut labels = HashMap::new();
        for (name, text) in sources {
            if let Some(lang) = name
                .strip_prefix("digest/")
                .and_then(|rest| rest.strip_suffix("/labels.toml"))
            {
                let table: BTreeMap<String, String> = toml::from_str(&text)
                    .with_context(|| format!("reading template labels {name}"))?;
                labels.insert(lang.to_string(), table);
            } else {
                env.add_template_owned(name.clone(), text)
                    .with_context(|| format!("parsing template {name}"))?;
            }
        }
        Ok(Templates { env, labels })
    }

    /// The template language for a list language: its primary subtag when
    /// templates exist for it, else English (also for `mul`).
    pub fn language(&self, list_lang: &str) -> String {
        let primary = list_lang
            .split('-')
            .next()
            .unwrap_or(FALLBACK)
            .to_ascii_lowercase();
        let known = self.labels.contains_key(&primary)
            || self
                .env
                .get_template(&format!("digest/{primary}/masthead.txt"))
                .is_ok();
        if known {
            primary
        } else {
            FALLBACK.to_string()
        }
    }

    /// The labels of `lang`, each missing one taken from English.
    pub fn labels(&self, lang: &str) -> Labels {
        let empty = BTreeMap::new();
        let own = self.labels.get(lang).unwrap_or(&empty);
        let fallback = self.labels.get(FALLBACK).unwrap_or(&empty);
        let get = |key: &str| {
            own.get(key)
                .or_else(|| fallback.get(key))
                .cloned()
                .unwrap_or_else(|| key.to_string())
        };
        Labels {
            subject: get("subject"),
            topics: get("topics"),
            masthead: get("masthead"),
            posts: get("posts"),
            footer: get("footer"),
            read_more: get("read_more"),
            back_to_topics: get("back_to_topics"),
            no_posts: get("no_posts"),
        }
    }

    /// Renders a template string (a label) with `context`.
    pub fn render_str<S: Serialize>(&self, source: &str, context: S) -> anyhow::Result<String> {
        self.env
            .render_str(source, context)
            .with_context(|| format!("rendering the label {source:?}"))
    }

    /// Renders `digest/LANG/FILE`, else `digest/en/FILE`, else `digest/FILE`.
    pub fn render<S: Serialize>(
        &self,
        lang: &str,
        file: &str,
        context: S,
    ) -> anyhow::Result<String> {
        let candidates = [
            format!("digest/{lang}/{file}"),
            format!("digest/{FALLBACK}/{file}"),
            format!("digest/{file}"),
        ];
        for name in &candidates {
            if let Ok(template) = self.env.get_template(name) {
                return template
                    .render(&context)
                    .with_context(|| format!("rendering template {name}"));
            }
        }
        anyhow::bail!("no template digest/{lang}/{file} nor an English one")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn languages_fall_back_to_english_key_by_key() {
        let templates = Templates::shipped();
        assert_eq!(templates.language("el"), "el");
        assert_eq!(templates.language("zh-Hant"), "zh");
        assert_eq!(templates.language("mul"), "en");
        assert_eq!(templates.language("ja"), "en");
        assert_eq!(templates.labels("el").topics, "Τα σημερινά θέματα");
        assert_eq!(templates.labels("fi").topics, "Päivän aiheet");
        assert_eq!(templates.labels("ja").topics, "Today's Topics");
    }

    #[test]
    fn a_file_in_templates_dir_replaces_the_shipped_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("digest/ja")).unwrap();
        std::fs::write(
            dir.path().join("digest/ja/labels.toml"),
            "topics = \"今日の話題\"\n",
        )
        .unwrap();
        let templates = Templates::load(dir.path()).unwrap();
        assert_eq!(templates.language("ja"), "ja");
        let labels = templates.labels("ja");
        assert_eq!(labels.topics, "今日の話題");
        assert_eq!(labels.read_more, "Read the whole post");
    }
}
