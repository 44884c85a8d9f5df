//! Parameters in SQL files: `${name}` and `${name:-default}` placeholders,
//! filled from `clip-sql --param name=value`, so a benchmark file reads its
//! data and model from wherever the user says without being edited.
//!
//! ```sql
//! CREATE EXTERNAL TABLE test STORED AS PARQUET LOCATION '${data:-https://.../test.parquet}';
//! SELECT clip_zero_shot('${model:-ViT-B/32}', img, ...) FROM test;
//! ```
//!
//! A placeholder with no value and no default, or a `--param` that no
//! placeholder uses (a typo), is an error rather than a silently different
//! query. Values are inserted as written: quote them in the SQL where they
//! are strings, as above.

use std::collections::{BTreeMap, BTreeSet};

/// A `--param` or placeholder that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    #[error("--param takes name=value, got '{0}'")]
    NotAPair(String),

    #[error("--param name '{0}' must be letters, digits and underscores")]
    BadName(String),

    #[error("unclosed parameter '${{{0}' (write ${{name}} or ${{name:-default}})")]
    Unclosed(String),

    #[error("'${{{0}}}' is not a parameter name")]
    NotAPlaceholder(String),

    #[error("the SQL needs a value for '{0}': pass --param {0}=...")]
    Missing(String),

    /// `--param`s no placeholder used: a typo, most likely.
    #[error("--param {} is not used by the SQL (no ${{{}}} placeholder)", .0.join(", "), .0[0])]
    Unused(Vec<String>),
}

/// Parse `name=value` (as given to `--param`).
pub fn parse_param(text: &str) -> Result<(String, String), ParamError> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| ParamError::NotAPair(text.to_string()))?;
    let name = name.trim();
    if !is_name(name) {
        return Err(ParamError::BadName(name.to_string()));
    }
    Ok((name.to_string(), value.to_string()))
}

fn is_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Fill the placeholders of `sql` from `params`. Errors name what is
/// missing or unused; `unused` is checked over all the texts a run fills,
/// so it is returned for the caller to check once.
pub fn substitute(
    sql: &str,
    params: &BTreeMap<String, String>,
    used: &mut BTreeSet<String>,
) -> Result<String, ParamError> {
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(ParamError::Unclosed(after.chars().take(30).collect()));
        };
        let body = &after[..end];
        let (name, default) = match body.split_once(":-") {
            Some((name, default)) => (name.trim(), Some(default)),
            None => (body.trim(), None),
        };
        if !is_name(name) {
            return Err(ParamError::NotAPlaceholder(body.to_string()));
        }
        match (params.get(name), default) {
            (Some(value), _) => {
                used.insert(name.to_string());
                out.push_str(value);
            }
            (None, Some(default)) => out.push_str(default),
            (None, None) => {
                return Err(ParamError::Missing(name.to_string()));
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The `--param`s that no placeholder used, as an error.
pub fn check_all_used(
    params: &BTreeMap<String, String>,
    used: &BTreeSet<String>,
) -> Result<(), ParamError> {
    let unused: Vec<String> = params
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    if unused.is_empty() {
        Ok(())
    } else {
        Err(ParamError::Unused(unused))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn values_then_defaults_fill_placeholders() {
        let p = params(&[("data", "/mnt/cifar")]);
        let mut used = BTreeSet::new();
        let sql = "LOCATION '${data:-https://x/y.parquet}' MODEL '${model:-ViT-B/32}' ${data}";
        assert_eq!(
            substitute(sql, &p, &mut used).unwrap(),
            "LOCATION '/mnt/cifar' MODEL 'ViT-B/32' /mnt/cifar"
        );
        assert!(check_all_used(&p, &used).is_ok());
        // Text without placeholders is unchanged, `$` alone included.
        assert_eq!(
            substitute("SELECT '$5', '{}'", &p, &mut BTreeSet::new()).unwrap(),
            "SELECT '$5', '{}'"
        );
    }

    #[test]
    fn missing_unused_and_malformed_are_errors() {
        let p = params(&[("dta", "/mnt")]);
        let mut used = BTreeSet::new();
        let err = substitute("'${data}'", &p, &mut used).unwrap_err();
        assert_eq!(err, ParamError::Missing("data".to_string()));
        assert!(err.to_string().contains("--param data="), "{err}");
        let err = check_all_used(&p, &used).unwrap_err().to_string();
        assert!(err.contains("--param dta is not used"), "{err}");
        assert!(err.contains("no ${dta} placeholder"), "{err}");
        let err = substitute("'${data'", &p, &mut used)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unclosed parameter '${data''"), "{err}");
        assert!(substitute("'${a b}'", &p, &mut used).is_err());
        assert_eq!(
            parse_param("model=ViT-L/14@336px").unwrap(),
            ("model".to_string(), "ViT-L/14@336px".to_string())
        );
        assert!(parse_param("no_equals").is_err());
        assert!(parse_param("bad name=1").is_err());
    }
}
