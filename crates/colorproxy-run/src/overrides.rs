//! Command-line config overrides: `--set KEY=VALUE` (dotted keys, TOML values, the syntax of a
//! recipe's `set`), checked against the config they change so that a wrong key or type is named.
use crate::{bail, Result};

/// One `KEY=VALUE` override: a dotted key and a TOML value (`0.01`, `[100, 200]`, `"vgg16"`;
/// a bare word that is not TOML, such as `vgg16` or `none`, is taken as a string).
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    pub key: String,
    pub value: toml::Value,
}

impl Override {
    /// Parses `KEY=VALUE`.
    pub fn parse(s: &str) -> Result<Self> {
        let Some((key, value)) = s.split_once('=') else {
            bail!("--set {s:?}: expected KEY=VALUE, e.g. --set optim.lr=0.01 or --set data.points=64");
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(|p| p.is_empty()) {
            bail!("--set {s:?}: the key must be a dotted config key such as optim.lr");
        }
        let value = value.trim();
        let value = match format!("v = {value}").parse::<toml::Table>() {
            Ok(mut t) => t.remove("v").unwrap_or(toml::Value::String(value.into())),
            Err(_) => toml::Value::String(value.into()),
        };
        Ok(Self { key: key.into(), value })
    }
}

fn type_name(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true or false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// Applies `sets` to a config's TOML text (the full resolved config). A key the config has must
/// keep its type (an integer may stand for a number); a key it lacks (an unset optional field)
/// is added, and the caller's parse of the result names it if the config has no such field.
/// Returns the new text and the keys that were not in the config.
pub fn apply(text: &str, sets: &[Override]) -> Result<(String, Vec<String>)> {
    let mut doc: toml::Table = text.parse().map_err(|e| crate::RunError::msg(format!("config: {e}")))?;
    let mut added = vec![];
    for o in sets {
        let (t, last) = section_of(&mut doc, &o.key).map_err(|p| {
            crate::RunError::msg(format!("--set {}: {p:?} is a value, not a section of the config", o.key))
        })?;
        let value = match (t.get(last), &o.value) {
            (Some(toml::Value::Float(_)), toml::Value::Integer(i)) => toml::Value::Float(*i as f64),
            (Some(toml::Value::Table(_)), _) => {
                bail!("--set {}: a section of the config; set its keys ({}.KEY=VALUE)", o.key, o.key)
            }
            (Some(old), new) if std::mem::discriminant(old) != std::mem::discriminant(new) => {
                bail!(
                    "--set {}={}: expected {} (the config has {}), got {}",
                    o.key,
                    o.value,
                    type_name(old),
                    old,
                    type_name(new)
                )
            }
            (None, v) => {
                added.push(o.key.clone());
                v.clone()
            }
            (Some(_), v) => v.clone(),
        };
        t.insert(last.to_string(), value);
    }
    Ok((toml::to_string(&doc)?, added))
}

/// The table that holds dotted `key`'s last part, and that part: `optim.lr` -> (`[optim]`, `lr`).
/// Missing sections are created; `Err` names a part that is a value, not a section.
pub fn section_of<'a, 'k>(
    doc: &'a mut toml::Table,
    key: &'k str,
) -> Result<(&'a mut toml::Table, &'k str), &'k str> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut t = doc;
    for p in &parts[..parts.len() - 1] {
        let e = t.entry(p.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = e.as_table_mut().ok_or(*p)?;
    }
    Ok((t, parts[parts.len() - 1]))
}

/// Parses every `KEY=VALUE` of `sets`.
pub fn parse_all(sets: &[String]) -> Result<Vec<Override>> {
    sets.iter().map(|s| Override::parse(s)).collect()
}

/// Resolves `cfg` with `sets`: serialises it, applies the overrides and parses the result with
/// `parse` (which validates). An error names the override.
pub fn resolve<T>(
    cfg_text: &str,
    sets: &[String],
    parse: impl Fn(&str) -> std::result::Result<T, colorproxy_nn::NnError>,
) -> Result<Option<T>> {
    if sets.is_empty() {
        return Ok(None);
    }
    let overrides = parse_all(sets)?;
    let (text, added) = apply(cfg_text, &overrides)?;
    match parse(&text) {
        Ok(c) => Ok(Some(c)),
        Err(e) if !added.is_empty() => {
            bail!("--set {}: not a key of this config, or an invalid value ({e})", added.join(", "))
        }
        Err(e) => bail!("--set {}: {e}", sets.join(" --set ")),
    }
}
