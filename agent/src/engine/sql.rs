//! Compiles a validated query into one SQL statement over the CDM.
//!
//! The recipe's unit query (trusted catalog text) is wrapped: units are joined to the
//! person register, placed in the period, labelled with the breakdown values, filtered by
//! the typed filters and aggregated into additive components per cell. Requester input
//! reaches the SQL only as values from the fixed vocabulary, quoted as literals.
//!
//! Output columns: `region`, `b_<breakdown>` per breakdown, `category` for distribution
//! recipes, then `units`, `persons`, `numerator`, `numerator_persons`, `value_sum`,
//! `value_sum_sq`, `top1`, `top2`, `population`, `units_mix`, `numerator_mix`,
//! `population_mix` (sums of the mixed unit ids, from which the agent derives cell keys).

use std::fmt::Write as _;

use norrsken_model::breakdown::{Breakdown, UNKNOWN};
use norrsken_model::catalog::{Kind, Recipe, Unit};
use norrsken_model::query::{Perspective, ValidatedQuery};

use super::cells::mix_sql;
pub use super::cells::TOTAL;

/// Quotes a string as an SQL literal.
pub fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

const AGE: &str = "(t_year - birth_year - CASE WHEN t_month < birth_month THEN 1 ELSE 0 END)";

/// The SQL expression giving a breakdown's label, over the `base` columns.
fn label_expr(b: Breakdown, recipe: &Recipe) -> String {
    match b {
        Breakdown::Year => "CAST(t_year AS VARCHAR)".into(),
        Breakdown::Quarter => "CAST(t_year AS VARCHAR) || 'Q' || CAST((t_month - 1) / 3 + 1 AS VARCHAR)".into(),
        Breakdown::Month => {
            "CAST(t_year AS VARCHAR) || '-' || CASE WHEN t_month < 10 THEN '0' ELSE '' END || CAST(t_month AS VARCHAR)".into()
        }
        Breakdown::Sex => "sex".into(),
        Breakdown::AgeBand => {
            let labels = recipe.age_bands.labels();
            let mut s = String::from("CASE");
            for (lower, label) in recipe.age_bands.0.iter().zip(labels.iter()).rev() {
                let _ = write!(s, " WHEN {AGE} >= {lower} THEN {}", literal(label));
            }
            s.push_str(" END");
            s
        }
        // Codes outside the vocabulary (another county's kommun, a code that does not exist)
        // are `unknown`: a label is always a value of the breakdown, never free text.
        Breakdown::Kommun => {
            let codes: Vec<String> = norrsken_model::geography::kommun_codes().iter().map(|c| literal(c)).collect();
            format!("CASE WHEN kommun IN ({}) THEN kommun ELSE {} END", codes.join(", "), literal(UNKNOWN))
        }
        Breakdown::Education => format!("COALESCE(education, {})", literal(UNKNOWN)),
        Breakdown::BirthCountry => "birth_country".into(),
        Breakdown::IncomeQuintile => format!("COALESCE(CAST(income_quintile AS VARCHAR), {})", literal(UNKNOWN)),
        Breakdown::CareType => "care_type".into(),
        Breakdown::Arm => "arm".into(),
        Breakdown::Measure => "measure".into(),
    }
}

fn column(b: Breakdown) -> String {
    format!("b_{}", b.name())
}

fn timestamp(year: i32, month: u32) -> String {
    format!("TIMESTAMP '{year:04}-{month:02}-01 00:00:00'")
}

/// Everything the compiler needs besides the query.
pub struct SqlContext<'a> {
    /// County code of the agent's region.
    pub region: &'a str,
}

/// A CDM table (or `residents`) by name, qualified by `schema` when the region's tables are
/// not the session's default ones (a central warehouse holding several regions).
fn table(schema: Option<&str>, name: &str) -> String {
    match schema {
        Some(s) => format!("{s}.{name}"),
        None => name.to_string(),
    }
}

/// The names a recipe may read: the CDM tables and the agent's `residents` view.
fn is_cdm_relation(name: &str) -> bool {
    name == "residents" || norrsken_model::cdm::CdmTable::from_name(name).is_some()
}

/// The recipe's unit query with its CDM tables qualified by `schema`. The recipe is parsed
/// (so that CTE names, columns and literals are never touched) and printed again.
fn qualified_recipe_sql(sql: &str, schema: &str) -> Result<String, String> {
    use datafusion::sql::sqlparser::ast::{visit_relations_mut, Ident, ObjectName, ObjectNamePart};
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    use std::ops::ControlFlow;
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql).map_err(|e| e.to_string())?;
    let [statement] = statements.as_mut_slice() else {
        return Err(format!("expected one statement, found {}", statements.len()));
    };
    let _ = visit_relations_mut(statement, |name: &mut ObjectName| {
        if let [ObjectNamePart::Identifier(ident)] = name.0.as_slice() {
            if is_cdm_relation(&ident.value) {
                let table = ident.clone();
                *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(schema)), ObjectNamePart::Identifier(table)]);
            }
        }
        ControlFlow::<()>::Continue(())
    });
    Ok(statement.to_string())
}

struct Parts {
    /// Columns the unit query contributes besides unit_id, person_id and index_time.
    extra: Vec<&'static str>,
    labels: Vec<Breakdown>,
    group: Vec<String>,
}

/// Builds the SELECT over `base` that adds `region`, labels, age and filters, then keeps
/// only rows in scope. `region_expr` is the region label; `extra` are passed through.
fn scoped_select(q: &ValidatedQuery, parts: &Parts, region_expr: &str, from: &str, extra_where: Option<&str>) -> String {
    let recipe = &q.recipe;
    let mut cols = vec!["unit_id".to_string(), "person_id".to_string()];
    cols.extend(parts.extra.iter().map(|c| c.to_string()));
    cols.push(format!("{region_expr} AS region"));
    for b in &parts.labels {
        cols.push(format!("{} AS {}", label_expr(*b, recipe), column(*b)));
    }
    let mut conditions = vec![format!("{AGE} >= {}", recipe.min_age)];
    for (b, values) in &q.filters {
        let list: Vec<String> = values.iter().map(|v| literal(v)).collect();
        conditions.push(format!("{} IN ({})", label_expr(*b, recipe), list.join(", ")));
    }
    if let Some(w) = extra_where {
        conditions.push(w.to_string());
    }
    format!("SELECT {} FROM {from} WHERE {}", cols.join(", "), conditions.join(" AND "))
}


/// The statement up to the `scoped` rows: `units` (the recipe), `base` (units placed in
/// the period and joined to the person register) and `scoped` (labelled, filtered, in the
/// perspective's region), shared by the protected and the central compilation.
struct Prelude {
    sql: String,
    parts: Parts,
    /// `b_<breakdown>` columns.
    bcols: Vec<String>,
    /// `region` and the breakdown columns.
    group: Vec<String>,
    /// The agent's region as a literal.
    own: String,
}

fn prelude(q: &ValidatedQuery, cx: &SqlContext<'_>, schema: Option<&str>, units: &str) -> Prelude {
    let recipe = &q.recipe;
    let mut extra = Vec::new();
    match recipe.kind {
        Kind::Proportion if recipe.is_distribution() => extra.push("category"),
        Kind::Proportion => extra.push("numerator"),
        Kind::Mean | Kind::CostSum => extra.push("value"),
        Kind::Rate | Kind::Count => {}
    }
    for (b, c) in [(Breakdown::CareType, "care_type"), (Breakdown::Arm, "arm"), (Breakdown::Measure, "measure")] {
        if recipe.allows(b) {
            extra.push(c);
        }
    }
    let bcols: Vec<String> = q.breakdowns.iter().map(|b| column(*b)).collect();
    let group: Vec<String> = std::iter::once("region".to_string()).chain(bcols.iter().cloned()).collect();
    let parts = Parts { extra, labels: q.breakdowns.clone(), group: group.clone() };
    let own = literal(cx.region);
    let (sy, sm) = q.period.start();
    let (ey, em) = q.period.end_exclusive();
    // Follow-up per case: index events whose outcome window runs past the data's last day
    // are left out (censored), in every cell and every way of computing it.
    let censor = match q.followup_through().and_then(|d| d.succ_opt()) {
        Some(next) => format!(" AND u.index_time < TIMESTAMP '{} 00:00:00'", next.format("%Y-%m-%d")),
        None => String::new(),
    };
    let mut sql = String::new();
    let _ = write!(sql, "WITH units AS (\n{units}\n),\n");
    let passthrough: String = parts.extra.iter().map(|c| format!("u.{c}, ")).collect();
    let _ = write!(
        sql,
        "base AS (SELECT u.unit_id, u.person_id, {passthrough}\
         CAST(date_part('year', u.index_time) AS BIGINT) AS t_year, \
         CAST(date_part('month', u.index_time) AS BIGINT) AS t_month, \
         p.birth_year, p.birth_month, p.sex, p.kommun, p.education, p.birth_country, p.income_quintile \
         FROM units u JOIN {} p ON p.person_id = u.person_id \
         WHERE u.index_time >= {} AND u.index_time < {}{censor}),\n",
        table(schema, "persons"),
        timestamp(sy, sm),
        timestamp(ey, em)
    );
    let home_region = "substr(kommun, 1, 2)";
    let (region_expr, resident_only) = match (q.options.perspective, recipe.kind) {
        (Perspective::Population, _) => (home_region.to_string(), None),
        // A provider-perspective rate counts the care the region gave its own residents, so
        // that numerator and population cover the same people.
        (Perspective::Provider, Kind::Rate) => (own.clone(), Some(format!("{home_region} = {own}"))),
        (Perspective::Provider, _) => (own.clone(), None),
    };
    let _ = write!(sql, "scoped AS ({}),\n", scoped_select(q, &parts, &region_expr, "base", resident_only.as_deref()));
    Prelude { sql, parts, bcols, group, own }
}

/// The CTEs giving a rate's population: residents alive on 1 July of each year of the
/// period, labelled and filtered like the units (`population_base`, `population_scoped`).
fn population_ctes(q: &ValidatedQuery, parts: &Parts, own: &str, residents: &str) -> String {
    let years: Vec<String> = (q.period.first_year()..=q.period.last_year())
        .map(|y| format!("SELECT CAST({y} AS BIGINT) AS year_no, DATE '{y:04}-07-01' AS mid_year"))
        .collect();
    let pop_base = format!(
        "SELECT p.person_id AS unit_id, p.person_id, y.year_no AS t_year, CAST(7 AS BIGINT) AS t_month, \
         p.birth_year, p.birth_month, p.sex, p.kommun, p.education, p.birth_country, p.income_quintile \
         FROM {residents} p CROSS JOIN ({}) AS y \
         WHERE (p.birth_year < y.year_no OR (p.birth_year = y.year_no AND p.birth_month <= 7)) \
         AND (p.death_date IS NULL OR p.death_date >= y.mid_year)",
        years.join(" UNION ALL ")
    );
    let pop_scoped = scoped_select(q, &Parts { extra: vec![], labels: parts.labels.clone(), group: vec![] }, own, "population_base", None);
    format!("population_base AS ({pop_base}),\npopulation_scoped AS ({pop_scoped}),\n")
}

/// Person-based recipes count each person once per cell: the `deduplicated` CTE keeps one
/// row per unit and group (`group_by`), with its flags and values.
fn dedup_cte(parts: &Parts, select: &str, group_by: &str) -> String {
    let carry: String = parts
        .extra
        .iter()
        .map(|c| match *c {
            "numerator" => ", MAX(CASE WHEN numerator THEN 1 ELSE 0 END) AS num".to_string(),
            c => format!(", MAX({c}) AS {c}"),
        })
        .collect();
    format!("deduplicated AS (SELECT {select}, unit_id, MAX(person_id) AS person_id{carry} FROM scoped GROUP BY {group_by}),\n")
}

const FLAGGED: &str = "flagged AS (SELECT scoped.*, CASE WHEN numerator THEN 1 ELSE 0 END AS num FROM scoped),\n";

/// Compiles the query. The caller has validated it against the catalog.
///
/// Besides the cells of the asked breakdowns the statement returns their margins: every
/// subset of the breakdowns summed over the others (label `total`), computed with
/// GROUPING SETS so that distinct persons and record keys are exact in margins too.
/// Disclosure control needs the margins to protect withheld cells against subtraction.
pub fn compile(q: &ValidatedQuery, cx: &SqlContext<'_>) -> String {
    let recipe = &q.recipe;
    let Prelude { mut sql, parts, bcols, group, own } = prelude(q, cx, None, &recipe.sql);

    // Label lists: `plain` names the columns, `lab` also turns rolled-up NULLs into 'total'.
    let plain = group.join(", ");
    let lab = std::iter::once("region".to_string())
        .chain(bcols.iter().map(|c| format!("COALESCE({c}, {}) AS {c}", literal(TOTAL))))
        .collect::<Vec<_>>()
        .join(", ");
    // GROUP BY over every subset of the breakdowns (each set keeps region and `extra`).
    let sets = |extra: &[&str]| -> String {
        let tail: String = extra.iter().map(|e| format!(", {e}")).collect();
        if bcols.is_empty() {
            return format!("region{tail}");
        }
        let n = bcols.len();
        let mut subsets = Vec::new();
        for mask in (0..(1u32 << n)).rev() {
            let cols: String = (0..n).filter(|i| mask & (1 << i) != 0).map(|i| format!(", {}", bcols[i])).collect();
            subsets.push(format!("(region{cols}{tail})"));
        }
        format!("GROUPING SETS ({})", subsets.join(", "))
    };

    // Person-based recipes count each person once per cell (and once per margin cell).
    let dedup = recipe.unit == Unit::Person;
    let src = if dedup {
        sql.push_str(&dedup_cte(&parts, &lab, &sets(&["unit_id"])));
        "deduplicated"
    } else if parts.extra.contains(&"numerator") {
        sql.push_str(FLAGGED);
        "flagged"
    } else {
        "scoped"
    };
    // How to select and group labels when aggregating `src`.
    let sel = if dedup { plain.clone() } else { lab.clone() };
    let grp = |extra: &[&str]| -> String {
        if dedup {
            let tail: String = extra.iter().map(|e| format!(", {e}")).collect();
            format!("{plain}{tail}")
        } else {
            sets(extra)
        }
    };
    let key = mix_sql("unit_id");
    let (units, numerator) = if dedup {
        ("COUNT(DISTINCT unit_id)", "COUNT(DISTINCT CASE WHEN num = 1 THEN unit_id END)")
    } else {
        ("COUNT(*)", "SUM(num)")
    };
    let g = plain.clone();

    let body = match recipe.kind {
        Kind::Proportion if recipe.is_distribution() => {
            // Categories as a union of one-row selects (portable: also pushed down to warehouses).
            let cats: Vec<String> = recipe.categories.iter().map(|c| format!("SELECT {} AS category", literal(&c.code))).collect();
            let on: Vec<String> = parts.group.iter().map(|c| format!("b.{c} = t.{c}")).collect();
            let tcols: String = parts.group.iter().map(|c| format!("t.{c}, ")).collect();
            format!(
                "totals AS (SELECT {sel}, {units} AS units, COUNT(DISTINCT person_id) AS persons, SUM({key}) AS units_mix FROM {src} GROUP BY {}),\n\
                 categories AS ({}),\n\
                 by_category AS (SELECT {sel}, category, {units} AS numerator, COUNT(DISTINCT person_id) AS numerator_persons, SUM({key}) AS numerator_mix FROM {src} GROUP BY {})\n\
                 SELECT {tcols}c.category, t.units, t.persons, COALESCE(b.numerator, 0) AS numerator, \
                 COALESCE(b.numerator_persons, 0) AS numerator_persons, \
                 CAST(0 AS DOUBLE) AS value_sum, CAST(0 AS DOUBLE) AS value_sum_sq, CAST(0 AS DOUBLE) AS top1, CAST(0 AS DOUBLE) AS top2, \
                 CAST(0 AS BIGINT) AS population, t.units_mix, COALESCE(b.numerator_mix, 0) AS numerator_mix, CAST(0 AS BIGINT) AS population_mix, CAST(0 AS BIGINT) AS persons_mix, CAST(0 AS DOUBLE) AS person_sum_sq \
                 FROM totals t CROSS JOIN categories c LEFT JOIN by_category b ON {} AND b.category = c.category",
                grp(&[]),
                cats.join(" UNION ALL "),
                grp(&["category"]),
                on.join(" AND ")
            )
        }
        Kind::Proportion => format!(
            "cells AS (SELECT {sel}, {units} AS units, COUNT(DISTINCT person_id) AS persons, {numerator} AS numerator, \
             COUNT(DISTINCT CASE WHEN num = 1 THEN person_id END) AS numerator_persons, \
             SUM({key}) AS units_mix, SUM(CASE WHEN num = 1 THEN {key} ELSE 0 END) AS numerator_mix \
             FROM {src} GROUP BY {})\n\
             SELECT {g}, units, persons, numerator, numerator_persons, \
             CAST(0 AS DOUBLE) AS value_sum, CAST(0 AS DOUBLE) AS value_sum_sq, CAST(0 AS DOUBLE) AS top1, CAST(0 AS DOUBLE) AS top2, \
             CAST(0 AS BIGINT) AS population, units_mix, numerator_mix, CAST(0 AS BIGINT) AS population_mix, CAST(0 AS BIGINT) AS persons_mix, CAST(0 AS DOUBLE) AS person_sum_sq FROM cells",
            grp(&[])
        ),
        Kind::Count => format!(
            "cells AS (SELECT {sel}, {units} AS units, COUNT(DISTINCT person_id) AS persons, \
             SUM({key}) AS units_mix FROM {src} GROUP BY {})\n\
             SELECT {g}, units, persons, CAST(0 AS BIGINT) AS numerator, CAST(0 AS BIGINT) AS numerator_persons, \
             CAST(0 AS DOUBLE) AS value_sum, CAST(0 AS DOUBLE) AS value_sum_sq, \
             CAST(0 AS DOUBLE) AS top1, CAST(0 AS DOUBLE) AS top2, CAST(0 AS BIGINT) AS population, units_mix, \
             CAST(0 AS BIGINT) AS numerator_mix, CAST(0 AS BIGINT) AS population_mix, CAST(0 AS BIGINT) AS persons_mix, CAST(0 AS DOUBLE) AS person_sum_sq FROM cells",
            grp(&[])
        ),
        // Means and cost sums: the two largest per-person contributions scale the
        // perturbation of the sum (and decide dominance for cost sums).
        Kind::Mean | Kind::CostSum => {
            let on: Vec<String> = parts.group.iter().map(|c| format!("t.{c} = c.{c}")).collect();
            let on_p: Vec<String> = parts.group.iter().map(|c| format!("p.{c} = c.{c}")).collect();
            // Cost sums: the persons' key and the spread of cost per patient.
            let (persons_mix, person_sum_sq) = if recipe.kind == Kind::CostSum {
                (format!("CAST(SUM({}) AS BIGINT)", mix_sql("person_id")), "SUM(person_sum * person_sum)".to_string())
            } else {
                ("CAST(0 AS BIGINT)".to_string(), "CAST(0 AS DOUBLE)".to_string())
            };
            let ccols: String = parts.group.iter().map(|c| format!("c.{c}, ")).collect();
            format!(
                "cells AS (SELECT {sel}, {units} AS units, COUNT(DISTINCT person_id) AS persons, SUM(value) AS value_sum, \
                 SUM(value * value) AS value_sum_sq, SUM({key}) AS units_mix FROM {src} GROUP BY {}),\n\
                 per_person AS (SELECT {sel}, person_id, SUM(value) AS person_sum FROM {src} GROUP BY {}),\n\
                 ranked AS (SELECT {g}, person_sum, ROW_NUMBER() OVER (PARTITION BY {g} ORDER BY person_sum DESC) AS rn FROM per_person),\n\
                 top AS (SELECT {g}, SUM(CASE WHEN rn = 1 THEN person_sum ELSE 0 END) AS top1, \
                 SUM(CASE WHEN rn = 2 THEN person_sum ELSE 0 END) AS top2 FROM ranked WHERE rn <= 2 GROUP BY {g}),\n\
                 spread AS (SELECT {g}, {persons_mix} AS persons_mix, {person_sum_sq} AS person_sum_sq FROM per_person GROUP BY {g})\n\
                 SELECT {ccols}c.units, c.persons, CAST(0 AS BIGINT) AS numerator, CAST(0 AS BIGINT) AS numerator_persons, \
                 c.value_sum, c.value_sum_sq, t.top1, t.top2, CAST(0 AS BIGINT) AS population, c.units_mix, \
                 CAST(0 AS BIGINT) AS numerator_mix, CAST(0 AS BIGINT) AS population_mix, p.persons_mix, p.person_sum_sq \
                 FROM cells c JOIN top t ON {} JOIN spread p ON {}",
                grp(&[]),
                grp(&["person_id"]),
                on.join(" AND "),
                on_p.join(" AND ")
            )
        }
        Kind::Rate => {
            let population = population_ctes(q, &parts, &own, "residents");
            let on: Vec<String> = parts.group.iter().map(|c| format!("p.{c} = e.{c}")).collect();
            let cols: String = parts.group.iter().map(|c| format!("COALESCE(p.{c}, e.{c}) AS {c}, ")).collect();
            let pkey = mix_sql("unit_id");
            format!(
                "{population}\
                 population AS (SELECT {lab}, COUNT(*) AS population, SUM({pkey}) AS population_mix FROM population_scoped GROUP BY {}),\n\
                 events AS (SELECT {sel}, {units} AS units, COUNT(DISTINCT person_id) AS persons, SUM({key}) AS units_mix FROM {src} GROUP BY {})\n\
                 SELECT {cols}COALESCE(e.units, 0) AS units, COALESCE(e.persons, 0) AS persons, \
                 CAST(0 AS BIGINT) AS numerator, CAST(0 AS BIGINT) AS numerator_persons, \
                 CAST(0 AS DOUBLE) AS value_sum, CAST(0 AS DOUBLE) AS value_sum_sq, CAST(0 AS DOUBLE) AS top1, CAST(0 AS DOUBLE) AS top2, \
                 COALESCE(p.population, 0) AS population, COALESCE(e.units_mix, 0) AS units_mix, CAST(0 AS BIGINT) AS numerator_mix, \
                 COALESCE(p.population_mix, 0) AS population_mix, CAST(0 AS BIGINT) AS persons_mix, CAST(0 AS DOUBLE) AS person_sum_sq \
                 FROM population p FULL OUTER JOIN events e ON {}",
                sets(&[]),
                grp(&[]),
                on.join(" AND ")
            )
        }
    };
    sql.push_str(&body);
    sql
}

/// Compiles the query into its labelled rows in scope, for [`super::margins`]: `region`,
/// `b_<breakdown>` per breakdown (query order), `person_id`, `unit_id`, then `num` (1 when
/// the unit meets the numerator) for proportions, `category` for distributions and `value`
/// for means and cost sums.
pub fn compile_rows(q: &ValidatedQuery, cx: &SqlContext<'_>) -> String {
    let Prelude { mut sql, parts, bcols, .. } = prelude(q, cx, None, &q.recipe.sql);
    let mut cols = vec!["region".to_string()];
    cols.extend(bcols);
    cols.push("person_id".into());
    cols.push("unit_id".into());
    if parts.extra.contains(&"category") {
        cols.push("category".into());
    }
    if parts.extra.contains(&"numerator") {
        cols.push("CASE WHEN numerator THEN 1 ELSE 0 END AS num".into());
    }
    if parts.extra.contains(&"value") {
        cols.push("value".into());
    }
    let _ = write!(sql, "labelled_rows AS (SELECT {} FROM scoped)\nSELECT * FROM labelled_rows", cols.join(", "));
    sql
}

/// Compiles a rate's population per combination of labels, for [`super::margins`]:
/// `region`, `b_<breakdown>`..., `population`, `population_mix` (no margins: they are sums).
pub fn compile_population_cells(q: &ValidatedQuery, cx: &SqlContext<'_>) -> String {
    let parts = Parts { extra: vec![], labels: q.breakdowns.clone(), group: vec![] };
    let plain: String = std::iter::once("region".to_string()).chain(q.breakdowns.iter().map(|b| column(*b))).collect::<Vec<_>>().join(", ");
    let population = population_ctes(q, &parts, &literal(cx.region), "residents");
    format!(
        "WITH {population}population_cells AS (SELECT {plain}, COUNT(*) AS population, SUM({}) AS population_mix \
         FROM population_scoped GROUP BY {plain})\nSELECT * FROM population_cells",
        mix_sql("unit_id")
    )
}

/// Compiles a rate's population as rows, for a prepared table ([`super::prepared`]): one
/// row per resident alive on 1 July of each year, `region`, `b_<breakdown>`..., `unit_id`.
pub fn compile_population_rows(q: &ValidatedQuery, cx: &SqlContext<'_>) -> String {
    let parts = Parts { extra: vec![], labels: q.breakdowns.clone(), group: vec![] };
    let cols: Vec<String> = std::iter::once("region".to_string()).chain(q.breakdowns.iter().map(|b| column(*b))).chain(std::iter::once("unit_id".to_string())).collect();
    let population = population_ctes(q, &parts, &literal(cx.region), "residents");
    format!("WITH {population}population_rows AS (SELECT {} FROM population_scoped)\nSELECT * FROM population_rows", cols.join(", "))
}

/// Compiles the query as a central warehouse would answer it for one region whose CDM
/// tables and `residents` view live in `schema`: the same units, labels, filters and
/// de-duplication as [`compile`], but only the asked cells and only the components an
/// answer releases, without margins, record keys or dominance figures (a central warehouse
/// applies no disclosure control). Used by the benchmark to check the federation's numbers
/// against DuckDB and PostgreSQL and to time them; portable to both.
///
/// Output columns: `region`, `b_<breakdown>` per breakdown, `category` for distribution
/// recipes, then `units`, `numerator` (for cost sums the distinct patients), `value_sum`,
/// `population`.
pub fn compile_central(q: &ValidatedQuery, region: &str, schema: &str) -> Result<String, String> {
    let recipe = &q.recipe;
    let units_sql = qualified_recipe_sql(&recipe.sql, schema).map_err(|e| format!("recipe {}: {e}", recipe.key()))?;
    let Prelude { mut sql, parts, group, own, .. } = prelude(q, &SqlContext { region }, Some(schema), &units_sql);
    let plain = group.join(", ");
    let dedup = recipe.unit == Unit::Person;
    let src = if dedup {
        sql.push_str(&dedup_cte(&parts, &plain, &format!("{plain}, unit_id")));
        "deduplicated"
    } else if parts.extra.contains(&"numerator") {
        sql.push_str(FLAGGED);
        "flagged"
    } else {
        "scoped"
    };
    // Each row of `deduplicated` is one unit of its cell, so plain counts are distinct counts.
    const ZERO_INT: &str = "CAST(0 AS BIGINT)";
    const ZERO_FLOAT: &str = "CAST(0 AS DOUBLE PRECISION)";
    let cells = |numerator: &str, value_sum: &str| {
        format!(
            "cells AS (SELECT {plain}, CAST(COUNT(*) AS BIGINT) AS units, CAST({numerator} AS BIGINT) AS numerator, \
             CAST({value_sum} AS DOUBLE PRECISION) AS value_sum, {ZERO_INT} AS population FROM {src} GROUP BY {plain})\n\
             SELECT * FROM cells"
        )
    };
    let body = match recipe.kind {
        Kind::Proportion if recipe.is_distribution() => {
            let cats: Vec<String> = recipe.categories.iter().map(|c| format!("SELECT {} AS category", literal(&c.code))).collect();
            let on: Vec<String> = parts.group.iter().map(|c| format!("b.{c} = t.{c}")).collect();
            let tcols: String = parts.group.iter().map(|c| format!("t.{c}, ")).collect();
            format!(
                "totals AS (SELECT {plain}, COUNT(*) AS units FROM {src} GROUP BY {plain}),\n\
                 categories AS ({}),\n\
                 by_category AS (SELECT {plain}, category, COUNT(*) AS numerator FROM {src} GROUP BY {plain}, category)\n\
                 SELECT {tcols}c.category, CAST(t.units AS BIGINT) AS units, CAST(COALESCE(b.numerator, 0) AS BIGINT) AS numerator, \
                 {ZERO_FLOAT} AS value_sum, {ZERO_INT} AS population \
                 FROM totals t CROSS JOIN categories c LEFT JOIN by_category b ON {} AND b.category = c.category",
                cats.join(" UNION ALL "),
                on.join(" AND ")
            )
        }
        Kind::Proportion => cells("SUM(num)", ZERO_FLOAT),
        Kind::Mean => cells(ZERO_INT, "SUM(value)"),
        // Cost per patient: the distinct patients in the `numerator` column.
        Kind::CostSum => cells("COUNT(DISTINCT person_id)", "SUM(value)"),
        Kind::Count => cells(ZERO_INT, ZERO_FLOAT),
        Kind::Rate => {
            let population = population_ctes(q, &parts, &own, &table(Some(schema), "residents"));
            let on: Vec<String> = parts.group.iter().map(|c| format!("p.{c} = e.{c}")).collect();
            let cols: String = parts.group.iter().map(|c| format!("COALESCE(p.{c}, e.{c}) AS {c}, ")).collect();
            format!(
                "{population}\
                 population AS (SELECT {plain}, COUNT(*) AS population FROM population_scoped GROUP BY {plain}),\n\
                 events AS (SELECT {plain}, COUNT(*) AS units FROM {src} GROUP BY {plain})\n\
                 SELECT {cols}CAST(COALESCE(e.units, 0) AS BIGINT) AS units, {ZERO_INT} AS numerator, {ZERO_FLOAT} AS value_sum, \
                 CAST(COALESCE(p.population, 0) AS BIGINT) AS population \
                 FROM population p FULL OUTER JOIN events e ON {}",
                on.join(" AND ")
            )
        }
    };
    sql.push_str(&body);
    Ok(sql)
}

#[cfg(test)]
mod tests {
    use super::*;
    use norrsken_model::catalog::Catalog;
    use norrsken_model::query::IndicatorQuery;

    fn validated(json: &str) -> ValidatedQuery {
        let (q, _) = IndicatorQuery::decode_ticket(json.as_bytes()).unwrap();
        q.validate(&Catalog::embedded(), Some((2021, 2025))).unwrap()
    }

    #[test]
    fn central_sql_reads_the_regions_schema_and_leaves_other_names_alone() {
        let q = validated(r#"{"indicator":"diabetes_statin","breakdowns":["sex"],"period":"2023..2025"}"#);
        let sql = compile_central(&q, "25", "norrsken_25").unwrap();
        for t in ["norrsken_25.contacts", "norrsken_25.residents", "norrsken_25.drugs", "norrsken_25.persons"] {
            assert!(sql.contains(t), "{t} missing in {sql}");
        }
        // CTE names of the recipe and column names that merely contain a table name stay.
        assert!(sql.contains("FROM diabetes") && !sql.contains("norrsken_25.diabetes"), "{sql}");
        assert!(sql.contains("person_id") && !sql.contains("norrsken_25.person_id"), "{sql}");
        assert!(!sql.contains("GROUPING SETS") && !sql.contains("_mix"), "central SQL computes no margins or keys: {sql}");
        // The agent's own compilation is unchanged: unqualified tables.
        let own = compile(&q, &SqlContext { region: "25" });
        assert!(own.contains("JOIN persons p") && !own.contains("norrsken_25"), "{own}");
    }

    #[test]
    fn a_rate_counts_its_population_from_the_schemas_residents() {
        let q = validated(r#"{"indicator":"hf_hospitalisation_rate","breakdowns":["year"],"period":"2024"}"#);
        let sql = compile_central(&q, "22", "central_22").unwrap();
        assert!(sql.contains("FROM central_22.residents p CROSS JOIN"), "{sql}");
        assert!(sql.contains("FULL OUTER JOIN events"), "{sql}");
    }
}
