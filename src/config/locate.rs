//! Where a problem is: [`ConfigError`] (file, line and column, key path, message), the
//! `Locator` that finds a key path's line and column in the file for errors found after
//! parsing, the mapping of serde's errors (wrong type, unknown key) to the key they name, and
//! the "did you mean" suggestion for a misspelt key or rule id.

use std::fmt;

use thiserror::Error;

/// A configuration problem: where it is and what is wrong.
#[derive(Debug, Error, PartialEq)]
pub struct ConfigError {
    /// The file (or `<string>`).
    pub origin: String,
    /// 1-based line and column, when the problem is at a place in the file.
    pub position: Option<(usize, usize)>,
    /// The key path, e.g. `tenant.graph_url` (empty for the whole file).
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some((line, col)) = self.position {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// Finds where a key path is in the file, for errors found after parsing.
pub(super) struct Locator<'a> {
    doc: Option<toml_edit::ImDocument<&'a str>>,
    text: &'a str,
}

impl<'a> Locator<'a> {
    pub(super) fn new(text: &'a str) -> Locator<'a> {
        Locator {
            doc: toml_edit::ImDocument::parse(text).ok(),
            text,
        }
    }

    pub(super) fn position(&self, path: &str) -> Option<(usize, usize)> {
        let doc = self.doc.as_ref()?;
        let mut table: &dyn toml_edit::TableLike = doc.as_table();
        let mut span = None;
        let parts: Vec<&str> = path.split('.').collect();
        for (i, part) in parts.iter().enumerate() {
            let (name, index) = match part.split_once('[') {
                Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
                None => (*part, None),
            };
            let (key, item) = table.get_key_value(name)?;
            span = key.span().or_else(|| item.span());
            let item = match index {
                Some(n) => {
                    let t = item.as_array_of_tables()?.get(n)?;
                    span = t.span().or(span);
                    if i + 1 == parts.len() {
                        break;
                    }
                    table = t;
                    continue;
                }
                None => item,
            };
            if i + 1 < parts.len() {
                table = item.as_table_like()?;
            }
        }
        span.map(|s| line_col(self.text, s.start))
    }
}

impl Locator<'_> {
    /// The key path as written in the file: a `[[tenants]]` entry's key that the entry does
    /// not write but inherits from `[tenant_defaults]` is that section's key.
    pub(super) fn written(&self, key: &str) -> String {
        if self.position(key).is_some() {
            return key.to_string();
        }
        let inherited = key
            .strip_prefix("tenants[")
            .and_then(|rest| rest.split_once("]."))
            .map(|(_, tail)| format!("tenant_defaults.{tail}"));
        match inherited {
            Some(k) if self.position(&k).is_some() => k,
            _ => key.to_string(),
        }
    }

    /// The keys of the table at `entry.section` where `entry` is `name[index]` (an array of
    /// tables or of inline tables): e.g. the rule ids of `tenants[2].rules`.
    pub(super) fn keys(&self, path: &str) -> Vec<String> {
        let keys = || -> Option<Vec<String>> {
            let doc = self.doc.as_ref()?;
            let (entry, section) = path.split_once('.')?;
            let (name, index) = entry.split_once('[')?;
            let index: usize = index.trim_end_matches(']').parse().ok()?;
            let item = doc.as_table().get(name)?;
            let table: &dyn toml_edit::TableLike = match item.as_array_of_tables() {
                Some(a) => a.get(index)?,
                None => item.as_array()?.get(index)?.as_inline_table()?,
            };
            let section = table.get(section)?.as_table_like()?;
            Some(section.iter().map(|(k, _)| k.to_string()).collect())
        };
        keys().unwrap_or_default()
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, col)
}

/// The closest of `candidates` to `word`, if it is close enough to be a likely typo.
pub(super) fn did_you_mean<'c>(word: &str, candidates: &[&'c str]) -> Option<&'c str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    }
    candidates
        .iter()
        .map(|c| (distance(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min()
        .map(|(_, c)| c)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" with a suggestion.
fn explain(message: &str) -> String {
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((field, tail)) = rest.split_once('`') else {
        return message.to_string();
    };
    let expected: Vec<&str> = tail.split('`').skip(1).step_by(2).collect();
    match did_you_mean(field, &expected) {
        Some(s) => format!("unknown key (did you mean {s}?)"),
        None if !expected.is_empty() => {
            format!("unknown key (known keys: {})", expected.join(", "))
        }
        None => "unknown key".to_string(),
    }
}

/// A serde error (wrong type, unknown key, missing field) as a [`ConfigError`] at its line and
/// column, naming the key.
pub(super) fn deserialize_error(
    e: serde_path_to_error::Error<toml::de::Error>,
    text: &str,
    origin: &str,
) -> ConfigError {
    let path = e.path().to_string();
    let inner = e.into_inner();
    let position = inner.span().map(|s| line_col(text, s.start));
    let message = explain(inner.message());
    // For an unknown key serde's path names its table; name the key itself.
    let key = match (message.starts_with("unknown key"), inner.span()) {
        (true, Some(span)) => {
            let k = text
                .get(span.clone())
                .unwrap_or("")
                .trim()
                .trim_matches('"');
            if path == k || path.ends_with(&format!(".{k}")) {
                path
            } else if path == "." || path.is_empty() {
                k.to_string()
            } else {
                format!("{path}.{k}")
            }
        }
        _ if path == "." => String::new(),
        _ => path,
    };
    ConfigError {
        origin: origin.to_string(),
        position,
        key,
        message,
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{error, GOOD};

    #[test]
    fn unknown_keys_name_the_key_the_line_and_a_suggestion() {
        let e = error(&format!("{GOOD}\n[graph]\nmax_concurency = 4\n"));
        assert_eq!(
            e,
            "config.toml:8:1: graph.max_concurency: unknown key (did you mean max_concurrency?)"
        );
        let e = error(&format!("{GOOD}\n[grahp]\n"));
        assert!(
            e.starts_with("config.toml:7:2: grahp: unknown key (did you mean graph?)"),
            "{e}"
        );
    }

    #[test]
    fn wrong_types_and_variants_name_the_key_and_line() {
        let e = error(&format!("{GOOD}\n[graph]\nmax_concurrency = \"eight\"\n"));
        assert!(
            e.starts_with(
                "config.toml:8:19: graph.max_concurrency: invalid type: string \"eight\""
            ),
            "{e}"
        );
        let e = error(&GOOD.replace("[tenant]", "[tenant]\ncloud = \"azure\""));
        assert!(
            e.starts_with("config.toml:3:9: tenant.cloud: unknown variant `azure`"),
            "{e}"
        );
    }
}
