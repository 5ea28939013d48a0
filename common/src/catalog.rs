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

/// What an indicator measures, which decides its additive components and its statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// numerator / denominator, both counts of units.
    Proportion,
    /// events per `rate_per` inhabitant-years; the denominator is the resident population.
    Rate,
    /// mean of a value per unit.
    Mean,
    /// number of units.
    Count,
    /// sum of a cost in SEK.
    CostSum,
}

impl Unit {
    pub fn name(self) -> &'static str {
        match self {
            Unit::Person => "person",
            Unit::Event => "event",
        }
    }
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Vardforlopp => "vardforlopp",
            Source::Npo => "npo",
            Source::Primarvardskvalitet => "primarvardskvalitet",
            Source::Kpp => "kpp",
        }
    }
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Proportion => "proportion",
            Kind::Rate => "rate",
            Kind::Mean => "mean",
            Kind::Count => "count",
            Kind::CostSum => "cost_sum",
        }
    }
}

/// What one counted unit is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Distinct persons: a person counts once per cell.
    Person,
    /// Events (episodes, contacts, operations): each counts.
    Event,
}

/// Where the indicator's definition comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Nationella vårdförlopp (standardised clinical pathways).
    Vardforlopp,
    /// Nationellt programområde (national programme area) indicators.
    Npo,
    /// PrimärvårdsKvalitet (SKR's primary-care quality indicators).
    Primarvardskvalitet,
    /// Kostnad per patient (cost per patient).
    Kpp,
}

/// Swedish and English text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Text {
    pub sv: String,
    pub en: String,
}

/// One value of a distribution indicator's outcome (e.g. a blood-pressure band).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub code: String,
    pub sv: String,
    pub en: String,
}

/// The range a region-level value is expected to lie in (checked on synthetic data).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plausible {
    pub min: f64,
    pub max: f64,
}

/// A recipe file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecipeFile {
    id: String,
    version: u32,
    source: Source,
    kind: Kind,
    unit: Unit,
    min_cell_size: u32,
    breakdowns: Vec<String>,
    #[serde(default)]
    min_age: u32,
    #[serde(default)]
    age_bands: Vec<u32>,
    period_attribute: String,
    #[serde(default)]
    value_unit: Option<String>,
    #[serde(default)]
    rate_per: Option<u32>,
    #[serde(default)]
    follow_up_days: Option<u32>,
    sql: String,
    title: Text,
    description: Text,
    population: Text,
    #[serde(default)]
    numerator: Option<Text>,
    #[serde(default)]
    categories: Vec<Category>,
    #[serde(default)]
    plausible: Option<Plausible>,
}

/// A validated recipe.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recipe {
    pub id: String,
    pub version: u32,
    pub source: Source,
    pub kind: Kind,
    pub unit: Unit,
    pub min_cell_size: u32,
    pub breakdowns: Vec<Breakdown>,
    /// Youngest age (at the index date) the recipe counts.
    pub min_age: u32,
    pub age_bands: AgeBands,
    pub period_attribute: String,
    pub value_unit: Option<String>,
    pub rate_per: Option<u32>,
    pub follow_up_days: Option<u32>,
    /// The unit query. Trusted catalog text, never requester input; see docs/catalog.md for
    /// the columns it must return.
    pub sql: String,
    pub title: Text,
    pub description: Text,
    pub population: Text,
    pub numerator: Option<Text>,
    pub categories: Vec<Category>,
    pub plausible: Option<Plausible>,
    /// SHA-256 of the recipe file, hex.
    pub hash: String,
    /// The file the recipe came from.
    pub file: String,
}

impl Recipe {
    pub fn allows(&self, b: Breakdown) -> bool {
        self.breakdowns.contains(&b)
    }
    /// `id@version`, the form used in logs and metadata.
    pub fn key(&self) -> String {
        format!("{}@{}", self.id, self.version)
    }
    /// Whether the answer has one row per outcome category.
    pub fn is_distribution(&self) -> bool {
        !self.categories.is_empty()
    }
}

/// A recipe that failed to load: which file, which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogError {
    pub file: String,
    pub field: Option<String>,
    pub reason: String,
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.field {
            Some(field) => write!(f, "{}: field '{}': {}", self.file, field, self.reason),
            None => write!(f, "{}: {}", self.file, self.reason),
        }
    }
}

/// Every problem found while loading a catalog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct CatalogErrors(pub Vec<CatalogError>);

impl fmt::Display for CatalogErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the indicator catalog has {} error(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  {e}")?;
        }
        Ok(())
    }
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && s.as_bytes()[0].is_ascii_lowercase()
}

/// Finds the key named on the line a TOML error points at.
fn field_of_toml_error(text: &str, err: &toml::de::Error) -> Option<String> {
    let msg = err.message();
    for marker in ["missing field `", "duplicate key `"] {
        if let Some(rest) = msg.split(marker).nth(1) {
            return rest.split('`').next().map(str::to_string);
        }
    }
    let span = err.span()?;
    let line_start = text[..span.start.min(text.len())].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("").trim();
    if let Some(table) = line.strip_prefix('[') {
        return Some(table.trim_end_matches(']').to_string());
    }
    line.split_once('=').map(|(k, _)| k.trim().to_string()).filter(|k| !k.is_empty())
}

fn line_of(text: &str, err: &toml::de::Error) -> Option<usize> {
    err.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1)
}

/// Parses and validates one recipe file.
pub fn parse_recipe(file: &str, text: &str) -> Result<Recipe, CatalogError> {
    let fail = |field: Option<&str>, reason: String| CatalogError {
        file: file.to_string(),
        field: field.map(str::to_string),
        reason,
    };
    let raw: RecipeFile = toml::from_str(text).map_err(|e| {
        let line = line_of(text, &e).map(|l| format!(" (line {l})")).unwrap_or_default();
        fail(field_of_toml_error(text, &e).as_deref(), format!("{}{line}", e.message().trim()))
    })?;

    if !is_identifier(&raw.id) {
        return Err(fail(Some("id"), format!("'{}' must be lower-case letters, digits and _ (start with a letter)", raw.id)));
    }
    if raw.version == 0 {
        return Err(fail(Some("version"), "must be 1 or higher".into()));
    }
    let stem = Path::new(file).file_name().and_then(|n| n.to_str()).unwrap_or(file);
    let expected = format!("{}.v{}.toml", raw.id, raw.version);
    if stem != expected {
        return Err(fail(None, format!("file name must be '{expected}' to match id and version")));
    }
    for (field, t) in [("title", &raw.title), ("description", &raw.description), ("population", &raw.population)] {
        if t.sv.trim().is_empty() || t.en.trim().is_empty() {
            return Err(fail(Some(field), "needs both a Swedish (sv) and an English (en) text".into()));
        }
    }
    if raw.period_attribute.trim().is_empty() {
        return Err(fail(Some("period_attribute"), "must say which date places a unit in the period".into()));
    }
    if raw.min_cell_size == 0 {
        return Err(fail(Some("min_cell_size"), "must be 1 or higher".into()));
    }
    let mut breakdowns = Vec::new();
    let mut seen = BTreeSet::new();
    for name in &raw.breakdowns {
        let b = Breakdown::parse(name).ok_or_else(|| {
            fail(Some("breakdowns"), format!("unknown breakdown '{name}'; known: {}", Breakdown::all_names()))
        })?;
        if !seen.insert(b) {
            return Err(fail(Some("breakdowns"), format!("'{name}' is listed twice")));
        }
        breakdowns.push(b);
    }
    let age_bands = AgeBands(raw.age_bands.clone());
    age_bands.validate().map_err(|r| fail(Some("age_bands"), r))?;
    if breakdowns.contains(&Breakdown::AgeBand) && age_bands.0.is_empty() {
        return Err(fail(Some("age_bands"), "the recipe allows the age_band breakdown, so it must list its bands".into()));
    }
    if let Some(&first) = age_bands.0.first() {
        if first != raw.min_age {
            return Err(fail(
                Some("age_bands"),
                format!("the first band must start at min_age ({}), not at {first}", raw.min_age),
            ));
        }
    }
    match raw.kind {
        Kind::Proportion => {
            if raw.numerator.is_none() && raw.categories.is_empty() {
                return Err(fail(Some("numerator"), "a proportion needs a numerator description (or categories)".into()));
            }
        }
        Kind::Rate => {
            if raw.unit != Unit::Event {
                return Err(fail(Some("unit"), "a rate counts events; set unit = \"event\"".into()));
            }
            if raw.rate_per.is_none() {
                return Err(fail(Some("rate_per"), "a rate needs rate_per (e.g. 1000 inhabitants)".into()));
            }
            if let Some(b) = breakdowns.iter().find(|b| matches!(b, Breakdown::Quarter | Breakdown::Month)) {
                return Err(fail(Some("breakdowns"), format!("a rate's population is counted per year, so '{b}' is not allowed")));
            }
            if breakdowns.contains(&Breakdown::CareType) {
                return Err(fail(Some("breakdowns"), "a rate's population has no care type, so 'care_type' is not allowed".into()));
            }
        }
        Kind::Mean | Kind::CostSum => {
            if raw.value_unit.as_deref().map_or(true, |u| u.trim().is_empty()) {
                return Err(fail(Some("value_unit"), format!("a {} needs the unit of its value (e.g. \"SEK\")", raw.kind.name())));
            }
        }
        Kind::Count => {}
    }
    if raw.rate_per.is_some() && raw.kind != Kind::Rate {
        return Err(fail(Some("rate_per"), "only a rate has rate_per".into()));
    }
    if !raw.categories.is_empty() {
        if raw.kind != Kind::Proportion {
            return Err(fail(Some("categories"), "only a proportion can have categories".into()));
        }
        let mut codes = BTreeSet::new();
        for c in &raw.categories {
            if !is_identifier(&c.code) {
                return Err(fail(Some("categories"), format!("category code '{}' must be an identifier", c.code)));
            }
            if !codes.insert(c.code.as_str()) {
                return Err(fail(Some("categories"), format!("category '{}' is listed twice", c.code)));
            }
        }
    }
    let sql = raw.sql.trim();
    let head = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    if head != "SELECT" && head != "WITH" {
        return Err(fail(Some("sql"), "must be one SELECT (or WITH ... SELECT) statement".into()));
    }
    if sql.contains(';') {
        return Err(fail(Some("sql"), "must be a single statement without ';'".into()));
    }
    if let Some(p) = raw.plausible {
        if !(p.min <= p.max) {
            return Err(fail(Some("plausible"), format!("min {} is above max {}", p.min, p.max)));
        }
    }

    let hash = hex::encode(Sha256::digest(text.as_bytes()));
    Ok(Recipe {
        id: raw.id,
        version: raw.version,
        source: raw.source,
        kind: raw.kind,
        unit: raw.unit,
        min_cell_size: raw.min_cell_size,
        breakdowns,
        min_age: raw.min_age,
        age_bands,
        period_attribute: raw.period_attribute,
        value_unit: raw.value_unit,
        rate_per: raw.rate_per,
        follow_up_days: raw.follow_up_days,
        sql: sql.to_string(),
        title: raw.title,
        description: raw.description,
        population: raw.population,
        numerator: raw.numerator,
        categories: raw.categories,
        plausible: raw.plausible,
        hash,
        file: file.to_string(),
    })
}

/// A loaded, validated set of recipes with its content hash.
#[derive(Debug, Clone)]
pub struct Catalog {
    recipes: BTreeMap<(String, u32), Arc<Recipe>>,
    hash: String,
}

mod embedded {
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
            if let Some(f) = r.follow_up_days {
                s.push_str(&format!("- Follow-up: {f} days after the index date (recent units have incomplete follow-up)\n"));
            }
            s.push_str(&format!("- Ages: {}+ at the index date; age bands {}\n", r.min_age, r.age_bands.labels().join(", ")));
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
        let doc = include_str!("../../docs/indicators.md");
        assert!(
            doc == Catalog::embedded().to_markdown(),
            "docs/indicators.md is out of date: run `norrsken indicators --format markdown > docs/indicators.md`"
        );
    }
}
