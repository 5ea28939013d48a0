//! The indicator catalog: versioned recipes (indikator-recept), one TOML file per recipe
//! version, named `<id>.v<version>.toml`.
//!
//! The catalog is the allowlist: a query can only name a recipe, its declared breakdowns
//! and the fixed values of those breakdowns. `docs/catalog.md` documents the format.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::breakdown::{AgeBands, Breakdown};

mod cohort;
mod parse;
mod recipe;

pub use cohort::*;
pub use parse::*;
pub use recipe::*;

/// A loaded, validated set of recipes with its content hash.
#[derive(Debug, Clone)]
pub struct Catalog {
    recipes: BTreeMap<(String, u32), Arc<Recipe>>,
    hash: String,
}

pub(crate) mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded_catalog.rs"));
}

impl Catalog {
    /// Builds a catalog from (file name, text) pairs, reporting every bad file.
    pub fn from_sources<'a>(sources: impl IntoIterator<Item = (String, &'a str)>) -> Result<Catalog, CatalogErrors> {
        let mut recipes = BTreeMap::new();
        let mut errors = Vec::new();
        for (file, text) in sources {
            match parse_recipe(&file, text) {
                Ok(r) => {
                    let key = (r.id.clone(), r.version);
                    if let Some(prev) = recipes.get(&key) {
                        let prev: &Arc<Recipe> = prev;
                        errors.push(CatalogError {
                            file,
                            field: Some("version".into()),
                            reason: format!("{} is also defined in {}", r.key(), prev.file),
                        });
                    } else {
                        recipes.insert(key, Arc::new(r));
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        if !errors.is_empty() {
            return Err(CatalogErrors(errors));
        }
        if recipes.is_empty() {
            return Err(CatalogErrors(vec![CatalogError {
                file: "catalog".into(),
                field: None,
                reason: "no recipe files (*.toml) found".into(),
            }]));
        }
        let mut h = Sha256::new();
        for ((id, version), r) in &recipes {
            h.update(format!("{id}@{version}:{}\n", r.hash));
        }
        Ok(Catalog { recipes, hash: hex::encode(h.finalize()) })
    }

    /// Loads every `*.toml` file in a folder.
    pub fn load_dir(dir: &Path) -> Result<Catalog, CatalogErrors> {
        let io_err = |reason: String| CatalogErrors(vec![CatalogError { file: dir.display().to_string(), field: None, reason }]);
        let entries = std::fs::read_dir(dir).map_err(|e| io_err(format!("cannot read the catalog folder: {e}")))?;
        let mut files = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| io_err(e.to_string()))?.path();
            if path.extension().and_then(|e| e.to_str()) == Some("toml") {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| io_err(format!("cannot read {}: {e}", path.display())))?;
                files.push((path.display().to_string(), text));
            }
        }
        files.sort();
        Catalog::from_sources(files.iter().map(|(f, t)| (f.clone(), t.as_str())))
    }

    /// The catalog compiled into the binaries from the repository's `catalog/` folder.
    pub fn embedded() -> Catalog {
        match Catalog::from_sources(embedded::FILES.iter().map(|(f, t)| (f.to_string(), *t))) {
            Ok(c) => c,
            // The build script validates the embedded files; a failure here is a build bug.
            Err(e) => panic!("embedded catalog is invalid: {e}"),
        }
    }

    /// Loads from a folder when given, else the embedded catalog.
    pub fn load(dir: Option<&Path>) -> Result<Catalog, CatalogErrors> {
        match dir {
            Some(d) => Catalog::load_dir(d),
            None => Ok(Catalog::embedded()),
        }
    }

    /// SHA-256 over every recipe's id, version and file hash.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The latest version of every indicator.
    pub fn latest(&self) -> Vec<Arc<Recipe>> {
        let mut out: BTreeMap<&str, &Arc<Recipe>> = BTreeMap::new();
        for ((id, _), r) in &self.recipes {
            out.insert(id.as_str(), r);
        }
        out.into_values().cloned().collect()
    }

    pub fn all(&self) -> impl Iterator<Item = &Arc<Recipe>> {
        self.recipes.values()
    }

    /// A recipe by id and version; `None` means the latest version.
    pub fn get(&self, id: &str, version: Option<u32>) -> Option<&Arc<Recipe>> {
        match version {
            Some(v) => self.recipes.get(&(id.to_string(), v)),
            None => self.recipes.range((id.to_string(), 0)..=(id.to_string(), u32::MAX)).next_back().map(|(_, r)| r),
        }
    }

    pub fn versions(&self, id: &str) -> Vec<u32> {
        self.recipes.keys().filter(|(i, _)| i == id).map(|(_, v)| *v).collect()
    }

    /// The catalog as a Markdown reference (docs/indicators.md is this text).
    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        s.push_str("# Indicators\n\n");
        s.push_str("Generated from the recipes in `catalog/` by `norrsken indicators --format markdown`; ");
        s.push_str("a test fails when this page and the catalog disagree. The recipe format is described in ");
        s.push_str("[catalog.md](catalog.md).\n\n");
        s.push_str(&format!("Catalog hash: `{}`\n\n", self.hash));
        s.push_str("| indicator | version | kind | unit | source | title |\n|---|---|---|---|---|---|\n");
        for r in self.latest() {
            s.push_str(&format!(
                "| [`{}`](#{}) | {} | {} | {} | {} | {} |\n",
                r.id,
                r.id.replace('_', "-"),
                r.version,
                r.kind.name(),
                r.unit.name(),
                r.source.name(),
                r.title.en
            ));
        }
        for r in self.latest() {
            s.push_str(&format!("\n## {}\n\n", r.id.replace('_', "-")));
            s.push_str(&format!("**{}** / *{}*  \n", r.title.en, r.title.sv));
            s.push_str(&format!("`{}` · version {} · {} · counted in {}s · source {}\n\n", r.id, r.version, r.kind.name(), r.unit.name(), r.source.name()));
            s.push_str(&format!("{}\n\n", r.description.en));
            if let Some(a) = &r.area {
                s.push_str(&format!("- Programme area: {} / *{}*\n", a.en, a.sv));
            }
            s.push_str(&format!("- Population (denominator): {}\n", r.population.en));
            if let Some(n) = &r.numerator {
                s.push_str(&format!("- Numerator: {}\n", n.en));
            }
            if !r.categories.is_empty() {
                let cats: Vec<String> = r.categories.iter().map(|c| format!("`{}` ({})", c.code, c.en)).collect();
                s.push_str(&format!("- Categories: {}\n", cats.join(", ")));
            }
            if let Some(per) = r.rate_per {
                s.push_str(&format!("- Rate per {per} inhabitant-years\n"));
            }
            if let Some(u) = &r.value_unit {
                s.push_str(&format!("- Value unit: {u}\n"));
            }
            s.push_str(&format!("- Placed in the period by: {}\n", r.period_attribute));
            s.push_str(&format!("- Counted (over several years): {}\n", r.unit_semantics(2)));
            if let Some(f) = r.follow_up_days {
                s.push_str(&format!("- Follow-up: {f} days after the index date (index events whose window runs past the data's last day are left out)\n"));
            }
            s.push_str(&format!("- Ages: {}+ at the index date; age bands {}\n", r.min_age, r.age_bands.labels().join(", ")));
            match r.better {
                Some(Better::Higher) => s.push_str("- Better: higher\n"),
                Some(Better::Lower) => s.push_str("- Better: lower\n"),
                None => s.push_str("- Better: no direction (analyses say higher or lower, not better or worse)\n"),
            }
            if let Some(t) = &r.target {
                let v = if r.kind == Kind::Proportion { format!("{} %", t.value * 100.0) } else { t.value.to_string() };
                s.push_str(&format!("- Target level: {v} ({})\n", t.source));
            }
            if r.age_standardisation {
                s.push_str("- Age standardisation: allowed (`--standardise esp2013` or `se2020`)\n");
            }
            let bds: Vec<&str> = r.breakdowns.iter().map(|b| b.name()).collect();
            s.push_str(&format!("- Breakdowns: {}\n", bds.join(", ")));
            s.push_str(&format!("- Minimum cell size: {}\n", r.min_cell_size));
            if let Some(p) = r.plausible {
                s.push_str(&format!("- Plausible region-level value on synthetic data: {} to {}\n", p.min, p.max));
            }
            s.push_str(&format!("- Recipe file: `{}` (sha256 `{}`)\n", r.file, &r.hash[..16]));
        }
        s
    }

    pub fn ids(&self) -> Vec<String> {
        let set: BTreeSet<&String> = self.recipes.keys().map(|(id, _)| id).collect();
        set.into_iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
id = "demo_share"
version = 1
source = "vardforlopp"
kind = "proportion"
unit = "person"
min_cell_size = 5
breakdowns = ["year", "sex", "age_band"]
min_age = 18
age_bands = [18, 65]
period_attribute = "first contact in the year"
sql = "SELECT person_id AS unit_id, person_id, start_time AS index_time, TRUE AS numerator FROM contacts"

[title]
sv = "Demo"
en = "Demo"
[description]
sv = "Demo"
en = "Demo"
[population]
sv = "Alla"
en = "All"
[numerator]
sv = "Alla"
en = "All"
"#;

    fn parse(text: &str) -> Result<Recipe, CatalogError> {
        parse_recipe("catalog/demo_share.v1.toml", text)
    }

    #[test]
    fn a_good_recipe_loads() {
        let r = parse(GOOD).unwrap();
        assert_eq!(r.key(), "demo_share@1");
        assert_eq!(r.breakdowns, [Breakdown::Year, Breakdown::Sex, Breakdown::AgeBand]);
        assert_eq!(r.hash.len(), 64);
    }

    /// Each class of malformed recipe gets its own error naming the field.
    #[test]
    fn malformed_recipes_name_file_field_and_reason() {
        let cases: Vec<(String, Option<&str>, &str)> = vec![
            (GOOD.replace("kind = \"proportion\"", "kind = \"ratio\""), Some("kind"), "unknown variant"),
            (GOOD.replace("version = 1\n", ""), Some("version"), "missing field"),
            (GOOD.replace("min_cell_size = 5", "min_cell_size = \"five\""), Some("min_cell_size"), "invalid type"),
            (GOOD.replace("\"age_band\"]", "\"age_band\", \"shoe_size\"]"), Some("breakdowns"), "unknown breakdown 'shoe_size'"),
            (GOOD.replace("\"sex\", \"age_band\"", "\"sex\", \"sex\", \"age_band\""), Some("breakdowns"), "listed twice"),
            (GOOD.replace("age_bands = [18, 65]", "age_bands = [65, 18]"), Some("age_bands"), "increase strictly"),
            (GOOD.replace("age_bands = [18, 65]\n", ""), Some("age_bands"), "must list its bands"),
            (GOOD.replace("age_bands = [18, 65]", "age_bands = [20, 65]"), Some("age_bands"), "start at min_age"),
            (GOOD.replace("id = \"demo_share\"", "id = \"Demo Share\""), Some("id"), "lower-case"),
            (GOOD.replace("version = 1", "version = 2"), None, "file name must be 'demo_share.v2.toml'"),
            (GOOD.replace("sql = \"SELECT", "sql = \"DELETE"), Some("sql"), "SELECT"),
            (GOOD.replace("FROM contacts\"", "FROM contacts; DROP TABLE persons\""), Some("sql"), "single statement"),
            (GOOD.replace("min_cell_size = 5", "min_cell_size = 0"), Some("min_cell_size"), "1 or higher"),
            (GOOD.replace("[numerator]\nsv = \"Alla\"\nen = \"All\"\n", ""), Some("numerator"), "numerator description"),
            (GOOD.replace("en = \"Demo\"\n[description]", "en = \"\"\n[description]"), Some("title"), "Swedish (sv) and an English (en)"),
            (GOOD.replace("period_attribute", "colour = \"blue\"\nperiod_attribute"), Some("colour"), "unknown field"),
            (GOOD.replace("kind = \"proportion\"", "kind = \"rate\"\nrate_per = 1000"), Some("unit"), "counts events"),
            (GOOD.replace("kind = \"proportion\"", "kind = \"mean\""), Some("value_unit"), "unit of its value"),
        ];
        let mut seen_reasons = BTreeSet::new();
        for (text, field, fragment) in cases {
            let e = parse(&text).unwrap_err();
            assert_eq!(e.field.as_deref(), field, "{e}");
            assert!(e.reason.contains(fragment), "expected '{fragment}' in: {e}");
            assert!(e.to_string().starts_with("catalog/demo_share.v1.toml"), "{e}");
            seen_reasons.insert(e.reason.clone());
        }
        assert_eq!(seen_reasons.len(), 18, "every class has its own message");
    }

    #[test]
    fn the_catalog_hash_follows_content_and_versions_resolve() {
        let a = Catalog::from_sources([("demo_share.v1.toml".to_string(), GOOD)]).unwrap();
        let changed = GOOD.replace("en = \"All\"\n[numerator]", "en = \"Everyone\"\n[numerator]");
        let b = Catalog::from_sources([("demo_share.v1.toml".to_string(), changed.as_str())]).unwrap();
        assert_ne!(a.hash(), b.hash());
        let v2 = GOOD.replace("version = 1", "version = 2");
        let c = Catalog::from_sources([
            ("demo_share.v1.toml".to_string(), GOOD),
            ("demo_share.v2.toml".to_string(), v2.as_str()),
        ])
        .unwrap();
        assert_eq!(c.get("demo_share", None).unwrap().version, 2);
        assert_eq!(c.get("demo_share", Some(1)).unwrap().version, 1);
        assert!(c.get("demo_share", Some(3)).is_none());
        assert_eq!(c.versions("demo_share"), [1, 2]);
    }

    #[test]
    fn the_embedded_catalog_is_valid() {
        let c = Catalog::embedded();
        assert!(c.latest().len() >= 14, "{}", c.latest().len());
    }

    #[test]
    fn docs_indicators_md_matches_the_catalog() {
        let doc = include_str!("../../../docs/indicators.md");
        assert!(
            doc == Catalog::embedded().to_markdown(),
            "docs/indicators.md is out of date: run `norrsken indicators --format markdown > docs/indicators.md`"
        );
    }
}
