//! The region's disclosure policy: a TOML file owned by region IT (see
//! docs/disclosure-control.md). Loaded and validated at start; a policy with an error stops
//! the agent with a message naming the line. The policy version travels with every answer.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use norrsken_model::breakdown::{Breakdown, Geography, TimeGrain};
use norrsken_model::catalog::Kind;
use norrsken_model::query::{Relay, ValidatedQuery};
use serde::{Deserialize, Serialize};

/// An approved recipe: its id (or `*` for every recipe in the catalog) and versions (empty
/// means every version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    pub id: String,
    #[serde(default)]
    pub versions: Vec<u32>,
}

/// Who the region answers (identities relayed by the coordinator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Requesters {
    /// Certificate common names; `*` for anyone the coordinator authenticated.
    #[serde(default = "everyone")]
    pub names: Vec<String>,
    /// Roles: `analyst`, `region_admin`.
    #[serde(default = "default_roles")]
    pub roles: Vec<String>,
}

fn everyone() -> Vec<String> {
    vec!["*".into()]
}
fn default_roles() -> Vec<String> {
    vec!["analyst".into(), "region_admin".into()]
}

impl Default for Requesters {
    fn default() -> Self {
        Requesters { names: everyone(), roles: default_roles() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Perturbation {
    /// Cell key method on (the default) or off.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// File holding the region's secret (at least 32 random bytes). Relative paths are read
    /// from the policy file's folder. Never leaves the agent.
    #[serde(default)]
    pub secret_file: Option<PathBuf>,
    /// D: the largest deviation added to a count.
    #[serde(default = "default_d")]
    pub max_deviation: u32,
    /// V: the variance of the deviation.
    #[serde(default = "default_v")]
    pub variance: f64,
    /// js: released counts never lie in 1..=js. Default: min_cell_size - 1.
    #[serde(default)]
    pub js: Option<u32>,
    /// Sums (of means and cost sums) are perturbed by up to this fraction of the cell's
    /// largest per-person contribution, and by at least half of it (see
    /// docs/disclosure-control.md).
    #[serde(default = "default_magnitude")]
    pub magnitude: f64,
    /// Kinds released exactly although the cell key method is on (`mean`, `cost_sum`,
    /// `count`, `proportion`, `rate`). Empty by default: nothing exact leaves the agent.
    /// A kind listed here gives its exact components away, so margins minus cells and
    /// differences of filtered questions are exact again for it.
    #[serde(default)]
    pub exact: Vec<Kind>,
}

fn default_magnitude() -> f64 {
    0.1
}

fn yes() -> bool {
    true
}
fn default_d() -> u32 {
    2
}
fn default_v() -> f64 {
    1.0
}

impl Default for Perturbation {
    fn default() -> Self {
        Perturbation { enabled: true, secret_file: None, max_deviation: 2, variance: 1.0, js: None, magnitude: default_magnitude(), exact: Vec::new() }
    }
}

/// The rule that withholds cost sums dominated by one or two persons.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DominanceRule {
    /// (n, k): withhold when the n largest contributors make up more than k % of the sum.
    Nk,
    /// p %: withhold when the rest of the sum (without the two largest) is less than p % of
    /// the largest contribution, so the second largest could estimate the largest within p %.
    PPercent,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dominance {
    #[serde(default = "default_rule")]
    pub rule: DominanceRule,
    /// n of the (n, k) rule: 1 or 2.
    #[serde(default = "default_n")]
    pub n: u32,
    /// k of the (n, k) rule, in percent.
    #[serde(default = "default_k")]
    pub k: f64,
    /// p of the p % rule, in percent.
    #[serde(default = "default_p")]
    pub p: f64,
}

fn default_rule() -> DominanceRule {
    DominanceRule::Nk
}
fn default_n() -> u32 {
    2
}
fn default_k() -> f64 {
    85.0
}
fn default_p() -> f64 {
    10.0
}

impl Default for Dominance {
    fn default() -> Self {
        Dominance { rule: DominanceRule::Nk, n: 2, k: 85.0, p: 10.0 }
    }
}

/// `[ledger]`: the agent's own record of what it released to whom, and the per-requester
/// budget it keeps (see docs/disclosure-control.md, "The release ledger"). It never decides
/// what a cell shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerPolicy {
    /// On by default. Off, the agent keeps no record of cells and no budget (its audit log
    /// still records every question).
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Distinct cells one requester may receive per recipe version and data version; a
    /// question that would exceed it is refused whole, with the numbers.
    #[serde(default = "default_budget")]
    pub budget_cells: u64,
}

fn default_budget() -> u64 {
    50_000
}

impl Default for LedgerPolicy {
    fn default() -> Self {
        LedgerPolicy { enabled: true, budget_cells: default_budget() }
    }
}

/// `[standardisation]`: when an age total carries its directly standardised value (see
/// docs/analysis.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StandardisationPolicy {
    /// Fewest events in an age total for its standardised value (PHE publishes none below
    /// 10); every age band must be released too.
    #[serde(default = "default_min_events")]
    pub min_events: u32,
}

fn default_min_events() -> u32 {
    10
}

impl Default for StandardisationPolicy {
    fn default() -> Self {
        StandardisationPolicy { min_events: default_min_events() }
    }
}

/// A region's policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Travels with every answer; change it whenever the policy changes.
    pub version: String,
    /// k: the region's minimum cell size (a recipe or request may raise it, never lower it).
    #[serde(default = "default_min_cell")]
    pub min_cell_size: u32,
    /// Release cells whose true value is zero (a zero numerator). Default true: a zero says
    /// no person has the attribute, which the complement rule already protects.
    #[serde(default = "yes")]
    pub release_zeros: bool,
    /// The minimum cell sizes a request may ask for: a requested size is raised to the next
    /// step, so that stepping it cannot find the exact size of a cell.
    #[serde(default = "default_ladder")]
    pub min_cell_ladder: Vec<u32>,
    /// Release cells whose outcome window reaches past the data's last date, flagged
    /// `incomplete_followup` (default false: withhold them with that reason).
    #[serde(default)]
    pub release_incomplete_followup: bool,
    /// Follow-up per case: index events whose outcome window runs past the data's last day
    /// are left out of every cell; a cell is withheld `incomplete_followup` when they take
    /// more than this share of its time span (default 0.1: a 30-day outcome keeps the last
    /// year, 30 of 365 days left out, and withholds its last quarter and December).
    #[serde(default = "default_censored_share")]
    pub followup_max_censored_share: f64,
    /// Most breakdowns plus filtered attributes in one query (a cohort's `measure` aside).
    #[serde(default = "default_dims")]
    pub max_dimensions: u32,
    /// Breakdowns the region releases; absent means all in the vocabulary.
    #[serde(default)]
    pub breakdowns: Option<Vec<String>>,
    /// Finest geography released: `kommun` or `region`.
    #[serde(default = "default_geo")]
    pub finest_geography: Geography,
    /// Finest time grain released: `month`, `quarter` or `year`.
    #[serde(default = "default_time")]
    pub finest_time: TimeGrain,
    #[serde(default)]
    pub requesters: Requesters,
    /// The recipes and versions this region answers.
    pub indicators: Vec<Approval>,
    #[serde(default)]
    pub perturbation: Perturbation,
    /// Round released counts to a multiple of this (0 = off), after perturbation.
    #[serde(default)]
    pub rounding_base: u32,
    #[serde(default)]
    pub dominance: Dominance,
    #[serde(default)]
    pub ledger: LedgerPolicy,
    #[serde(default)]
    pub standardisation: StandardisationPolicy,
    /// The file the policy came from.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

fn default_min_cell() -> u32 {
    5
}
fn default_ladder() -> Vec<u32> {
    vec![5, 10, 20, 50, 100, 200, 500, 1000]
}
fn default_censored_share() -> f64 {
    0.1
}
fn default_dims() -> u32 {
    3
}
fn default_geo() -> Geography {
    Geography::Kommun
}
fn default_time() -> TimeGrain {
    TimeGrain::Month
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {file}{}: {reason}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct PolicyError {
    pub file: String,
    pub line: Option<usize>,
    pub reason: String,
}

fn line_of_key(text: &str, key: &str) -> Option<usize> {
    text.lines().position(|l| {
        let t = l.trim_start();
        t.starts_with(key) && t[key.len()..].trim_start().starts_with('=')
    })
    .map(|i| i + 1)
}

impl Policy {
    /// Reads and validates a policy file.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError {
            file: path.display().to_string(),
            line: None,
            reason: format!("cannot read: {e}"),
        })?;
        let mut p = Policy::parse(&text, &path.display().to_string())?;
        if let Some(secret) = &p.perturbation.secret_file {
            if secret.is_relative() {
                let base = path.parent().unwrap_or(Path::new("."));
                p.perturbation.secret_file = Some(base.join(secret));
            }
        }
        p.file = Some(path.to_path_buf());
        Ok(p)
    }

    /// Parses and validates policy text; `name` is used in messages.
    pub fn parse(text: &str, name: &str) -> Result<Policy, PolicyError> {
        let fail = |key: &str, reason: String| PolicyError { file: name.to_string(), line: line_of_key(text, key), reason };
        let p: Policy = toml::from_str(text).map_err(|e| PolicyError {
            file: name.to_string(),
            line: e.span().map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1),
            reason: e.message().trim().to_string(),
        })?;
        if p.version.trim().is_empty() {
            return Err(fail("version", "version must not be empty".into()));
        }
        if p.min_cell_size < 1 {
            return Err(fail("min_cell_size", "min_cell_size must be at least 1".into()));
        }
        if p.max_dimensions < 1 {
            return Err(fail("max_dimensions", "max_dimensions must be at least 1".into()));
        }
        if let Some(list) = &p.breakdowns {
            for b in list {
                if Breakdown::parse(b).is_none() {
                    return Err(fail("breakdowns", format!("unknown breakdown '{b}'; known: {}", Breakdown::all_names())));
                }
            }
        }
        if p.indicators.is_empty() {
            return Err(fail("indicators", "the policy approves no indicators".into()));
        }
        for role in &p.requesters.roles {
            if !["analyst", "region_admin", "auditor"].contains(&role.as_str()) {
                return Err(fail("roles", format!("unknown role '{role}'; roles are analyst, region_admin, auditor")));
            }
        }
        let pert = &p.perturbation;
        if pert.enabled {
            if pert.secret_file.is_none() {
                return Err(fail("enabled", "perturbation is on, so secret_file must name the region's secret key file".into()));
            }
            if pert.max_deviation == 0 || pert.max_deviation > 10 {
                return Err(fail("max_deviation", format!("max_deviation {} must be 1 to 10", pert.max_deviation)));
            }
            if !(pert.variance > 0.0 && pert.variance <= (pert.max_deviation * pert.max_deviation) as f64) {
                return Err(fail("variance", format!("variance {} must be above 0 and at most max_deviation² ", pert.variance)));
            }
            if let Some(js) = pert.js {
                if js >= p.min_cell_size {
                    return Err(fail("js", format!("js {js} must be below min_cell_size {} (cells below k are withheld before perturbation)", p.min_cell_size)));
                }
            }
        }
        if p.min_cell_ladder.is_empty() || p.min_cell_ladder.windows(2).any(|w| w[1] <= w[0]) || p.min_cell_ladder[0] < 1 {
            return Err(fail("min_cell_ladder", format!("min_cell_ladder {:?} must list increasing sizes of at least 1", p.min_cell_ladder)));
        }
        if pert.enabled && !(pert.magnitude > 0.0 && pert.magnitude <= 0.5) {
            return Err(fail("magnitude", format!("magnitude {} must be above 0 and at most 0.5", pert.magnitude)));
        }
        if !(0.0..=1.0).contains(&p.followup_max_censored_share) {
            return Err(fail("followup_max_censored_share", format!("followup_max_censored_share {} must lie between 0 and 1", p.followup_max_censored_share)));
        }
        if p.ledger.enabled && p.ledger.budget_cells == 0 {
            return Err(fail("budget_cells", "budget_cells must be at least 1 (or turn the ledger off)".into()));
        }
        match p.dominance.rule {
            DominanceRule::Nk => {
                if !(1..=2).contains(&p.dominance.n) || !(p.dominance.k > 0.0 && p.dominance.k < 100.0) {
                    return Err(fail("k", "the (n, k) rule needs n of 1 or 2 and k between 0 and 100 percent".into()));
                }
            }
            DominanceRule::PPercent => {
                if !(p.dominance.p > 0.0 && p.dominance.p < 100.0) {
                    return Err(fail("p", "p must lie between 0 and 100 percent".into()));
                }
            }
        }
        Ok(p)
    }

    /// js: released counts never lie in 1..=js.
    pub fn js(&self) -> u32 {
        self.perturbation.js.unwrap_or(self.min_cell_size.saturating_sub(1))
    }

    /// Whether a kind's components are released exactly (perturbation off, or the kind
    /// listed in `perturbation.exact`).
    pub fn exact(&self, kind: Kind) -> bool {
        !self.perturbation.enabled || self.perturbation.exact.contains(&kind)
    }

    /// A requested minimum cell size raised to the next step of the ladder (the largest
    /// step when it lies above them all).
    pub fn ladder_step(&self, requested: u32) -> u32 {
        self.min_cell_ladder.iter().copied().find(|&s| s >= requested).unwrap_or_else(|| self.min_cell_ladder.last().copied().unwrap_or(requested).max(requested))
    }

    /// Checks a query against the policy and returns the minimum cell sizes to apply.
    pub fn admit(&self, v: &ValidatedQuery, relay: Option<&Relay>) -> Result<Admission, Refusal> {
        let recipe = &v.recipe;
        let approved = self
            .indicators
            .iter()
            .any(|a| (a.id == "*" || a.id == recipe.id) && (a.versions.is_empty() || a.versions.contains(&recipe.version)));
        if !approved {
            return Err(Refusal::NotApproved { recipe: recipe.key() });
        }
        if let Some(relay) = relay {
            let cn = common_name(&relay.requester_subject);
            let by_name = self.requesters.names.iter().any(|n| n == "*" || n == cn);
            let by_role = self.requesters.roles.iter().any(|r| r == &relay.requester_role);
            if !by_name || !by_role {
                return Err(Refusal::Requester { cn: cn.to_string(), role: relay.requester_role.clone() });
            }
        }
        let mut dims: BTreeSet<Breakdown> = v.breakdowns.iter().copied().collect();
        dims.extend(v.filters.keys().copied());
        // A cohort's measures (before, after, change) are the same persons seen in three
        // windows, not a finer population: they do not count towards the limit.
        let counted = dims.iter().filter(|b| **b != Breakdown::Measure).count();
        if counted as u32 > self.max_dimensions {
            return Err(Refusal::TooManyDimensions {
                used: dims.iter().filter(|b| **b != Breakdown::Measure).map(|b| b.name()).collect::<Vec<_>>().join(", "),
                count: counted,
                allowed: self.max_dimensions,
            });
        }
        for b in &dims {
            if let Some(list) = &self.breakdowns {
                if !list.iter().any(|x| x == b.name()) {
                    return Err(Refusal::Breakdown { breakdown: b.name() });
                }
            }
            if *b == Breakdown::Kommun && self.finest_geography == Geography::Region {
                return Err(Refusal::Geography);
            }
            if let Some(grain) = b.time_grain() {
                if grain < self.finest_time {
                    return Err(Refusal::TimeBreakdown { finest: self.finest_time.name(), breakdown: b.name() });
                }
            }
        }
        if v.period.grain < self.finest_time {
            return Err(Refusal::Period { finest: self.finest_time.name(), period: v.period.to_string() });
        }
        let floor = self.min_cell_size.max(recipe.min_cell_size);
        let k = match v.options.min_cell_size {
            Some(asked) if asked > floor => floor.max(self.ladder_step(asked)),
            _ => floor,
        };
        Ok(Admission { floor, k })
    }

    /// A policy approving every recipe with the defaults, for development.
    pub fn development(secret_file: Option<PathBuf>) -> Policy {
        Policy {
            version: "development".into(),
            min_cell_size: 5,
            release_zeros: true,
            max_dimensions: 3,
            breakdowns: None,
            finest_geography: Geography::Kommun,
            finest_time: TimeGrain::Month,
            requesters: Requesters::default(),
            indicators: vec![Approval { id: "*".into(), versions: vec![] }],
            perturbation: Perturbation { enabled: secret_file.is_some(), secret_file, ..Perturbation::default() },
            rounding_base: 0,
            dominance: Dominance::default(),
            ledger: LedgerPolicy::default(),
            standardisation: StandardisationPolicy::default(),
            min_cell_ladder: default_ladder(),
            release_incomplete_followup: false,
            followup_max_censored_share: default_censored_share(),
            file: None,
        }
    }
}

/// Why the region's policy does not answer a question.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("this region has not approved indicator {recipe}")]
    NotApproved { recipe: String },
    #[error("this region does not answer requester '{cn}' (role {role})")]
    Requester { cn: String, role: String },
    #[error("the query uses {count} breakdowns and filters ({used}); this region allows at most {allowed}")]
    TooManyDimensions { used: String, count: usize, allowed: u32 },
    #[error("this region does not release the '{breakdown}' breakdown")]
    Breakdown { breakdown: &'static str },
    #[error("this region releases nothing finer than the region: drop 'kommun'")]
    Geography,
    #[error("this region releases time by {finest} at the finest: use that instead of '{breakdown}'")]
    TimeBreakdown { finest: &'static str, breakdown: &'static str },
    #[error("this region releases periods of whole {finest}s: the period {period} is finer")]
    Period { finest: &'static str, period: String },
}

/// The minimum cell sizes of an admitted question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// The region's and the recipe's minimum cell size: what the release ledger protects.
    pub floor: u32,
    /// The size applied to this answer: the floor, or a larger request raised to the
    /// policy's ladder.
    pub k: u32,
}

/// The common name in a subject such as `CN=analyst, O=Norrsken`.
pub fn common_name(subject: &str) -> &str {
    subject
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or(subject)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = "2026-11-01"
min_cell_size = 5
max_dimensions = 3
finest_geography = "kommun"
finest_time = "quarter"

[[indicators]]
id = "stroke_reperfusion"
versions = [1]

[perturbation]
enabled = true
secret_file = "region.key"
"#;

    #[test]
    fn a_good_policy_loads() {
        let p = Policy::parse(GOOD, "policy.toml").unwrap();
        assert_eq!(p.js(), 4);
        assert_eq!(p.finest_time, TimeGrain::Quarter);
    }

    #[test]
    fn errors_name_the_line() {
        let cases = [
            (GOOD.replace("min_cell_size = 5", "min_cell_size = \"five\""), 3, "invalid type"),
            (GOOD.replace("max_dimensions = 3", "max_dimensions = 3\ncolour = 1"), 5, "unknown field"),
            (GOOD.replace("finest_time = \"quarter\"", "finest_time = \"week\""), 6, "unknown variant"),
            (GOOD.replace("secret_file = \"region.key\"\n", ""), 13, "secret_file"),
            (GOOD.replace("min_cell_size = 5", "min_cell_size = 0"), 3, "at least 1"),
        ];
        for (text, line, fragment) in cases {
            let e = Policy::parse(&text, "policy.toml").unwrap_err();
            assert_eq!(e.line, Some(line), "{e}");
            assert!(e.reason.contains(fragment), "{e}");
            assert!(e.to_string().starts_with(&format!("policy policy.toml line {line}:")), "{e}");
        }
    }

    #[test]
    fn requested_sizes_round_up_to_the_ladder() {
        let p = Policy::parse(GOOD, "policy.toml").unwrap();
        assert_eq!(p.ladder_step(6), 10);
        assert_eq!(p.ladder_step(10), 10);
        assert_eq!(p.ladder_step(11), 20);
        assert_eq!(p.ladder_step(999), 1000);
        let bad = GOOD.replace("max_dimensions = 3", "max_dimensions = 3\nmin_cell_ladder = [10, 5]");
        assert!(Policy::parse(&bad, "p").unwrap_err().reason.contains("increasing"));
        let exact = GOOD.replace("secret_file = \"region.key\"", "secret_file = \"region.key\"\nexact = [\"mean\"]");
        let p = Policy::parse(&exact, "p").unwrap();
        assert!(p.exact(Kind::Mean) && !p.exact(Kind::CostSum));
    }

    #[test]
    fn common_names_are_read_from_subjects() {
        assert_eq!(common_name("CN=analyst, O=Norrsken development PKI"), "analyst");
        assert_eq!(common_name("O=x, CN=region-admin-25"), "region-admin-25");
    }
}
