//! The words and layouts tidings writes, one set per language: digests
//! (`digest/`), the mail it answers with (`mail/`) and its web pages
//! (`web/`), each area with `LANG/labels.toml` (short texts, minijinja
//! templates themselves) and template files, English the fallback key by
//! key and file by file.
//!
//! The shipped `templates/` directory is built into the binary, so tidings
//! speaks every shipped language on a fresh machine; files under the
//! configured `templates_dir` replace or add to them.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context;
use include_dir::{include_dir, Dir};
use minijinja::Environment;
use serde::Serialize;

/// The shipped templates.
static SHIPPED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The language whose templates every other falls back to.
pub const FALLBACK: &str = "en";

/// Loaded templates of every area.
pub struct Templates {
    env: Environment<'static>,
    /// Labels by area and language.
    labels: HashMap<(String, String), BTreeMap<String, String>>,
    /// Every source by its path, labels too: templates are compiled from
    /// here when first used, so a one-shot command (the pipe) pays only for
    /// those it renders.
    sources: Arc<BTreeMap<String, String>>,
    /// A digest of each area's sources, so what was made with them can tell
    /// whether they changed; made when first asked for.
    digests: OnceLock<HashMap<String, String>>,
}

/// The labels of one language of the digests, English where it has none.
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
    /// Said above an HTML digest whose last posts show only their titles
    /// to keep within its budget, before the archive link.
    pub shortened: String,
    /// Template of the line that ends a table of contents cut short; sees
    /// count.
    pub more_posts: String,
    /// Before another version of a story ("Also in"), in a digest across
    /// several lists.
    pub also_in: String,
    /// Template of the subject of a digest across several lists; sees
    /// site, names and date.
    pub combined_subject: String,
    /// Template of its masthead; sees site, names and preferences_url.
    pub combined_masthead: String,
    /// Template of its footer; sees leave_all_url.
    pub combined_footer: String,
    /// Template of a section's line on posting; sees address.
    pub section_post: String,
    /// Template of a section's line on leaving; sees name and url.
    pub section_leave: String,
}

impl Templates {
    /// The shipped templates alone.
    pub fn shipped() -> Templates {
        Self::from_sources(shipped_sources()).expect("shipped templates are valid")
    }

    /// The shipped templates, with the files under `dir` replacing or adding
    /// to them.
    pub fn load(dir: &Path) -> anyhow::Result<Templates> {
        let mut sources = shipped_sources();
        if dir.is_dir() {
            let mut stack = vec![dir.to_path_buf()];
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
        let mut labels = HashMap::new();
        for (name, text) in &sources {
            let mut parts = name.splitn(3, '/');
            if let (Some(area), Some(lang), Some("labels.toml")) =
                (parts.next(), parts.next(), parts.next())
            {
                let table: BTreeMap<String, String> = toml::from_str(text)
                    .with_context(|| format!("reading template labels {name}"))?;
                labels.insert((area.to_string(), lang.to_string()), table);
            }
        }
        let sources = Arc::new(sources);
        let mut env = Environment::new();
        // minijinja escapes what .html templates show unless marked safe.
        env.set_keep_trailing_newline(true);
        let loaded = sources.clone();
        env.set_loader(move |name| {
            Ok(loaded
                .get(name)
                .filter(|_| !name.ends_with("/labels.toml"))
                .cloned())
        });
        Ok(Templates {
            env,
            labels,
            sources,
            digests: OnceLock::new(),
        })
    }

    /// Compiles every template, so a broken one is found at start (the
    /// daemon, `tidings check`) rather than when it is first rendered.
    pub fn compile_all(&self) -> anyhow::Result<()> {
        for name in self.sources.keys() {
            if !name.ends_with("/labels.toml") {
                self.env
                    .get_template(name)
                    .with_context(|| format!("parsing template {name}"))?;
            }
        }
        Ok(())
    }

    /// A digest of every template of `area`: it changes when any does.
    pub fn digest(&self, area: &str) -> &str {
        let digests = self.digests.get_or_init(|| {
            use sha2::Digest;
            let mut hashers: HashMap<String, sha2::Sha256> = HashMap::new();
            for (name, text) in self.sources.iter() {
                let area = name.split('/').next().unwrap_or("").to_string();
                let hasher = hashers.entry(area).or_default();
                hasher.update(name.as_bytes());
                hasher.update([0]);
                hasher.update(text.as_bytes());
                hasher.update([0]);
            }
            hashers
                .into_iter()
                .map(|(area, hasher)| (area, data_encoding::HEXLOWER.encode(&hasher.finalize())))
                .collect()
        });
        digests.get(area).map_or("", String::as_str)
    }

    /// The template language for a list language: its primary subtag when
    /// digest templates exist for it, else English (also for `mul`).
    pub fn language(&self, list_lang: &str) -> String {
        let primary = list_lang
            .split('-')
            .next()
            .unwrap_or(FALLBACK)
            .to_ascii_lowercase();
        let known = self
            .labels
            .contains_key(&("digest".to_string(), primary.clone()))
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

    /// Every label of `area` in `lang`, each missing one taken from English.
    pub fn labels_of(&self, area: &str, lang: &str) -> BTreeMap<String, String> {
        let mut all = self
            .labels
            .get(&(area.to_string(), FALLBACK.to_string()))
            .cloned()
            .unwrap_or_default();
        if let Some(own) = self.labels.get(&(area.to_string(), lang.to_string())) {
            all.extend(own.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        all
    }

    /// One label of `area` in `lang`, else in English, else its key.
    pub fn label(&self, area: &str, lang: &str, key: &str) -> String {
        [lang, FALLBACK]
            .iter()
            .find_map(|lang| {
                self.labels
                    .get(&(area.to_string(), lang.to_string()))
                    .and_then(|labels| labels.get(key))
            })
            .cloned()
            .unwrap_or_else(|| key.to_string())
    }

    /// The labels of the digests in `lang`.
    pub fn labels(&self, lang: &str) -> Labels {
        let get = |key: &str| self.label("digest", lang, key);
        Labels {
            subject: get("subject"),
            topics: get("topics"),
            masthead: get("masthead"),
            posts: get("posts"),
            footer: get("footer"),
            read_more: get("read_more"),
            back_to_topics: get("back_to_topics"),
            no_posts: get("no_posts"),
            shortened: get("shortened"),
            more_posts: get("more_posts"),
            also_in: get("also_in"),
            combined_subject: get("combined_subject"),
            combined_masthead: get("combined_masthead"),
            combined_footer: get("combined_footer"),
            section_post: get("section_post"),
            section_leave: get("section_leave"),
        }
    }

    /// Renders a template string (a label) with `context`.
    pub fn render_str<S: Serialize>(&self, source: &str, context: S) -> anyhow::Result<String> {
        self.env
            .render_str(source, context)
            .with_context(|| format!("rendering the label {source:?}"))
    }

    /// Renders `AREA/LANG/FILE`, else `AREA/en/FILE`, else `AREA/FILE`.
    pub fn render<S: Serialize>(
        &self,
        area: &str,
        lang: &str,
        file: &str,
        context: S,
    ) -> anyhow::Result<String> {
        let candidates = [
            format!("{area}/{lang}/{file}"),
            format!("{area}/{FALLBACK}/{file}"),
            format!("{area}/{file}"),
        ];
        for name in &candidates {
            if let Ok(template) = self.env.get_template(name) {
                return template
                    .render(&context)
                    .with_context(|| format!("rendering template {name}"));
            }
        }
        anyhow::bail!("no template {area}/{lang}/{file} nor an English one")
    }
}

/// Every shipped file under `templates/`, by its path there, for `tidings
/// init` to write out.
pub fn shipped_files() -> BTreeMap<String, String> {
    shipped_sources()
}

/// Every shipped file under `templates/`, by its path there.
fn shipped_sources() -> BTreeMap<String, String> {
    let mut sources = BTreeMap::new();
    let mut stack = vec![&SHIPPED];
    while let Some(dir) = stack.pop() {
        for entry in dir.entries() {
            if let Some(sub) = entry.as_dir() {
                stack.push(sub);
            } else if let Some(file) = entry.as_file() {
                if let Some(text) = file.contents_utf8() {
                    let name = file.path().to_string_lossy().replace('\\', "/");
                    sources.insert(name, text.to_string());
                }
            }
        }
    }
    sources
}

#[cfg(test)]
mod translations;

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
    fn every_shipped_template_compiles_and_a_broken_one_is_named() {
        Templates::shipped().compile_all().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("web/en")).unwrap();
        std::fs::write(dir.path().join("web/en/broken.html"), "{% if %}").unwrap();
        let templates = Templates::load(dir.path()).unwrap();
        let error = format!("{:#}", templates.compile_all().unwrap_err());
        assert!(error.contains("web/en/broken.html"), "{error}");
        // The digest of an area follows its sources.
        assert_ne!(templates.digest("web"), Templates::shipped().digest("web"));
        assert_eq!(
            templates.digest("mail"),
            Templates::shipped().digest("mail")
        );
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

    #[test]
    fn every_shipped_file_is_built_in() {
        let sources = shipped_sources();
        assert!(sources.contains_key("digest/digest.html"));
        assert!(sources.contains_key("digest/el/footer.txt"));
        let on_disk =
            std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/digest"))
                .unwrap()
                .count();
        assert!(
            on_disk > 10 && sources.keys().filter(|k| k.starts_with("digest/")).count() > on_disk
        );
    }
}
