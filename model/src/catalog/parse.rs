//! Reading a recipe file: TOML into a checked [`Recipe`], errors naming file, line and field.

use super::*;

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
    #[serde(default)]
    better: Option<Better>,
    #[serde(default)]
    target: Option<Target>,
    #[serde(default)]
    age_standardisation: bool,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    cohort: Option<Cohort>,
    title: Text,
    description: Text,
    population: Text,
    #[serde(default)]
    numerator: Option<Text>,
    #[serde(default)]
    categories: Vec<Category>,
    #[serde(default)]
    plausible: Option<Plausible>,
    #[serde(default)]
    area: Option<Text>,
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
    let sql = match (&raw.sql, &raw.cohort) {
        (Some(_), Some(_)) => return Err(fail(Some("sql"), "a cohort recipe is defined by its [cohort] table; leave sql out".into())),
        (None, None) => return Err(fail(Some("sql"), "missing: the unit query (or a [cohort] table)".into())),
        (Some(sql), None) => sql.trim().to_string(),
        (None, Some(c)) => {
            c.validate().map_err(|(field, reason)| fail(Some(field), reason))?;
            if raw.kind != Kind::Mean || raw.unit != Unit::Person {
                return Err(fail(Some("kind"), "a cohort recipe is kind = \"mean\" with unit = \"person\" (a person's outcome per window)".into()));
            }
            let mut need = vec![Breakdown::Measure];
            if c.comparison.is_some() {
                need.push(Breakdown::Arm);
            }
            if let Some(b) = need.iter().find(|b| !breakdowns.contains(b)) {
                return Err(fail(Some("breakdowns"), format!("a cohort recipe must allow '{b}'")));
            }
            if c.comparison.is_none() && breakdowns.contains(&Breakdown::Arm) {
                return Err(fail(Some("breakdowns"), "'arm' needs a comparison group ([cohort.comparison])".into()));
            }
            if raw.follow_up_days.is_some_and(|d| d != c.follow_up_days()) {
                return Err(fail(Some("follow_up_days"), format!("a cohort's follow-up is its washout and after window ({} days); leave it out", c.follow_up_days())));
            }
            c.unit_sql()
        }
    };
    if raw.cohort.is_none() {
        if let Some(b) = breakdowns.iter().find(|b| matches!(b, Breakdown::Arm | Breakdown::Measure)) {
            return Err(fail(Some("breakdowns"), format!("'{b}' belongs to cohort recipes (a [cohort] table)")));
        }
    }
    let sql = sql.as_str();
    let head = sql.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
    if head != "SELECT" && head != "WITH" {
        return Err(fail(Some("sql"), "must be one SELECT (or WITH ... SELECT) statement".into()));
    }
    if sql.contains(';') {
        return Err(fail(Some("sql"), "must be a single statement without ';'".into()));
    }
    if let Some(t) = &raw.target {
        if !t.value.is_finite() || (raw.kind == Kind::Proportion && !(0.0..=1.0).contains(&t.value)) {
            return Err(fail(Some("target"), format!("value {} is not a {} (a share is a fraction from 0 to 1)", t.value, raw.kind.name())));
        }
        if t.source.trim().is_empty() {
            return Err(fail(Some("target"), "name the target's source (who publishes it, the document and year)".into()));
        }
        if !raw.categories.is_empty() {
            return Err(fail(Some("target"), "a distribution has no single value to set a target for".into()));
        }
    }
    if raw.age_standardisation {
        if !matches!(raw.kind, Kind::Rate | Kind::Proportion) || !raw.categories.is_empty() {
            return Err(fail(Some("age_standardisation"), "only rates and proportions (without categories) can be age-standardised".into()));
        }
        if !breakdowns.contains(&Breakdown::AgeBand) || age_bands.0.len() < 2 {
            return Err(fail(Some("age_standardisation"), "needs the age_band breakdown and at least two age bands".into()));
        }
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
        follow_up_days: raw.cohort.as_ref().map(|c| c.follow_up_days()).or(raw.follow_up_days),
        better: raw.better,
        target: raw.target,
        age_standardisation: raw.age_standardisation,
        sql: sql.to_string(),
        title: raw.title,
        description: raw.description,
        population: raw.population,
        numerator: raw.numerator,
        categories: raw.categories,
        plausible: raw.plausible,
        area: raw.area,
        cohort: raw.cohort,
        hash,
        file: file.to_string(),
    })
}
