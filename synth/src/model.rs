//! The numbers the generator draws from: age structure, care volumes, disease occurrence,
//! lab distributions, codes, hospitals, and each region's practice profile.
//!
//! Sources are in `docs/data-model.md`; figures without a source are marked there as
//! assumptions. Codes are stored the way the Swedish registers store them: ICD-10-SE
//! without the dot ("I639"), KVÅ/NOMESCO procedure codes, ATC codes.

/// Share of the Swedish population in each five-year age band 0-4 … 95-99 (about 2023).
pub const BASE_AGE_BANDS: [f64; 20] = [
    5.5, 6.0, 6.0, 5.8, 5.9, 6.5, 6.8, 6.6, 6.2, 6.3, 6.5, 6.3, 5.8, // 0-64
    5.5, 5.4, 4.9, 3.1, 1.7, 0.8, 0.25, // 65-99
];

/// Weights of the 20 five-year bands for a kommun with the given share of 65+.
pub fn age_band_weights(share_65_plus: f64) -> [f64; 20] {
    let under: f64 = BASE_AGE_BANDS[..13].iter().sum();
    let over: f64 = BASE_AGE_BANDS[13..].iter().sum();
    let mut w = BASE_AGE_BANDS;
    for (i, x) in w.iter_mut().enumerate() {
        *x *= if i < 13 { (1.0 - share_65_plus) / under } else { share_65_plus / over };
    }
    w
}

/// Annual probability of death by age and sex (Gompertz fit to Swedish life tables).
pub fn mortality(age: i32, female: bool) -> f64 {
    let base = (-10.1 + 0.09 * age.max(0) as f64).exp();
    let infant = if age == 0 { 0.002 } else { 0.0 };
    ((base + infant) * if female { 0.8 } else { 1.1 }).min(0.6)
}

/// Rates per person-year of ordinary (background) care by age.
pub struct CareRates {
    pub inpatient: f64,
    pub specialist_doctor: f64,
    pub specialist_other: f64,
    pub primary_doctor: f64,
    pub primary_other: f64,
}

pub fn care_rates(age: i32) -> CareRates {
    let (inpatient, specialist_doctor, primary_doctor) = match age {
        0..=17 => (0.05, 0.65, 1.0),
        18..=44 => (0.065, 0.9, 1.0),
        45..=64 => (0.095, 1.35, 1.2),
        65..=79 => (0.22, 2.2, 1.8),
        _ => (0.42, 2.1, 2.4),
    };
    CareRates {
        inpatient,
        specialist_doctor,
        specialist_other: specialist_doctor * 0.6,
        primary_doctor,
        primary_other: primary_doctor * 2.2,
    }
}

/// Main diagnoses of ordinary inpatient stays: (code, weight, department, planned share).
pub const INPATIENT_DIAGNOSES: &[(&str, f64, &str, f64)] = &[
    ("J189", 8.0, "MED", 0.0),
    ("I489", 6.0, "MED", 0.1),
    ("N390", 5.0, "MED", 0.0),
    ("R074", 5.0, "MED", 0.0),
    ("K802", 4.0, "KIR", 0.5),
    ("I214", 4.0, "MED", 0.0),
    ("J441", 3.0, "MED", 0.0),
    ("S060", 3.0, "KIR", 0.0),
    ("K358", 3.0, "KIR", 0.0),
    ("F102", 2.0, "PSY", 0.1),
    ("M161", 4.0, "ORT", 1.0),
    ("M171", 4.0, "ORT", 1.0),
    ("C509", 2.0, "KIR", 0.8),
    ("C619", 2.0, "URO", 0.8),
    ("K590", 2.0, "MED", 0.0),
    ("R104", 4.0, "KIR", 0.0),
    ("E869", 2.0, "MED", 0.0),
    ("F329", 2.0, "PSY", 0.2),
    ("O800", 5.0, "KK", 0.3),
    ("J209", 2.0, "MED", 0.0),
];

/// Main diagnoses of ordinary specialist outpatient visits.
pub const OUTPATIENT_DIAGNOSES: &[(&str, f64, &str)] = &[
    ("I109", 6.0, "MED"),
    ("I489", 4.0, "MED"),
    ("M179", 4.0, "ORT"),
    ("M545", 4.0, "ORT"),
    ("H251", 4.0, "OGO"),
    ("H353", 3.0, "OGO"),
    ("C509", 3.0, "ONK"),
    ("L400", 2.0, "HUD"),
    ("K219", 2.0, "MED"),
    ("N400", 3.0, "URO"),
    ("J459", 3.0, "MED"),
    ("F329", 4.0, "PSY"),
    ("F419", 4.0, "PSY"),
    ("F900", 2.0, "PSY"),
    ("Z098", 6.0, "MED"),
    ("Z098", 3.0, "KIR"),
    ("H669", 2.0, "ONH"),
    ("J353", 1.5, "ONH"),
    ("N951", 3.0, "KK"),
    ("R104", 2.0, "KIR"),
];

/// Main diagnoses in primary care (None: no diagnosis recorded, common for nurse visits).
pub const PRIMARY_DIAGNOSES: &[(Option<&str>, f64)] = &[
    (Some("J069"), 10.0),
    (Some("I109"), 9.0),
    (Some("M545"), 6.0),
    (Some("Z000"), 5.0),
    (Some("J029"), 4.0),
    (Some("N390"), 4.0),
    (Some("F329"), 3.0),
    (Some("F419"), 3.0),
    (Some("L309"), 2.0),
    (Some("R51"), 2.0),
    (Some("E780"), 3.0),
    (Some("H109"), 2.0),
    (Some("Z762"), 4.0),
    (Some("M796"), 3.0),
    (None, 14.0),
];

/// Common secondary diagnoses.
pub const SECONDARY_DIAGNOSES: &[(&str, f64)] = &[
    ("I109", 8.0),
    ("I489", 4.0),
    ("E780", 3.0),
    ("N183", 2.0),
    ("F329", 2.0),
    ("Z921", 2.0),
    ("J449", 1.0),
    ("K219", 2.0),
    ("D649", 2.0),
    ("E039", 2.0),
];

/// Ordinary procedures (KVÅ/NOMESCO).
pub const ORDINARY_PROCEDURES: &[(&str, f64)] = &[
    ("XS100", 4.0),  // examination
    ("UJD02", 2.0),  // gastroscopy
    ("UJF32", 2.0),  // colonoscopy
    ("AQ015", 3.0),  // ultrasound
    ("AD008", 2.0),  // x-ray
    ("DV071", 3.0),  // intravenous infusion
    ("QB011", 1.0),  // minor skin surgery
    ("TJA10", 1.0),  // injection
];

// Indicator codes (see docs/data-model.md; codes marked there as unverified are
// assumptions that a region maps onto its own coding).
pub const THROMBOLYSIS: &str = "DT016";
pub const THROMBECTOMY: &str = "AAL10";
pub const SPIROMETRY: &str = "AF031";
pub const TONSILLECTOMY: &str = "EMB10";
pub const TECHNIQUE_COLD: &str = "ZXE00";
pub const TECHNIQUE_HOT: &str = "ZXE10";
pub const HIP_ARTHROPLASTY: &str = "NFB29";
pub const HIP_FIXATION: &str = "NFJ49";

/// What varies between regions: practice (what the indicators measure), care volumes and
/// costs. Shares are for 2021; `*_trend` is the change per year.
#[derive(Debug, Clone, Copy)]
pub struct RegionProfile {
    pub reperfusion: f64,
    pub reperfusion_trend: f64,
    pub thrombectomy_share: f64,
    pub stroke_mortality: f64,
    pub hip_surgery_24h: f64,
    pub hip_surgery_24h_trend: f64,
    pub osteoporosis_treatment: f64,
    pub tonsil_cold: f64,
    pub tonsil_cold_trend: f64,
    pub hf_raas: f64,
    pub hf_bb: f64,
    pub copd_spirometry: f64,
    pub hba1c_mean: f64,
    pub hba1c_trend: f64,
    pub diabetes_statin: f64,
    pub sbp_mean: f64,
    pub antipsychotics: f64,
    pub sepsis_mortality: f64,
    pub hf_admissions: f64,
    pub cost_level: f64,
    /// Share of inhabitants born abroad (outside the Nordic countries).
    pub foreign_born: f64,
}

/// Practice profiles of the four regions, indexed by county code. Assumptions shaped on the
/// published ranges (e.g. six-fold regional variation in thrombectomy), not real figures.
pub fn profile(region_code: &str) -> RegionProfile {
    let base = RegionProfile {
        reperfusion: 0.16,
        reperfusion_trend: 0.008,
        thrombectomy_share: 0.3,
        stroke_mortality: 0.13,
        hip_surgery_24h: 0.72,
        hip_surgery_24h_trend: 0.01,
        osteoporosis_treatment: 0.17,
        tonsil_cold: 0.66,
        tonsil_cold_trend: 0.03,
        hf_raas: 0.80,
        hf_bb: 0.78,
        copd_spirometry: 0.40,
        hba1c_mean: 52.0,
        hba1c_trend: -0.3,
        diabetes_statin: 0.62,
        sbp_mean: 136.0,
        antipsychotics: 0.80,
        sepsis_mortality: 0.18,
        hf_admissions: 0.16,
        cost_level: 1.0,
        foreign_born: 0.08,
    };
    match region_code {
        "25" => RegionProfile {
            reperfusion: 0.12,
            thrombectomy_share: 0.20,
            hip_surgery_24h: 0.66,
            tonsil_cold: 0.55,
            hf_raas: 0.76,
            copd_spirometry: 0.34,
            hba1c_mean: 53.5,
            diabetes_statin: 0.57,
            sbp_mean: 138.5,
            sepsis_mortality: 0.20,
            cost_level: 1.06,
            foreign_born: 0.07,
            ..base
        },
        "24" => RegionProfile {
            reperfusion: 0.20,
            thrombectomy_share: 0.45,
            stroke_mortality: 0.11,
            hip_surgery_24h: 0.82,
            osteoporosis_treatment: 0.23,
            tonsil_cold: 0.75,
            hf_bb: 0.82,
            copd_spirometry: 0.47,
            hba1c_mean: 51.0,
            diabetes_statin: 0.67,
            antipsychotics: 0.84,
            cost_level: 1.02,
            foreign_born: 0.09,
            ..base
        },
        "23" => RegionProfile {
            reperfusion: 0.15,
            thrombectomy_share: 0.25,
            hip_surgery_24h: 0.62,
            hip_surgery_24h_trend: 0.02,
            osteoporosis_treatment: 0.12,
            tonsil_cold: 0.64,
            hf_raas: 0.84,
            copd_spirometry: 0.42,
            diabetes_statin: 0.60,
            sbp_mean: 135.0,
            antipsychotics: 0.76,
            cost_level: 0.97,
            foreign_born: 0.06,
            ..base
        },
        _ => RegionProfile {
            reperfusion: 0.17,
            thrombectomy_share: 0.28,
            stroke_mortality: 0.14,
            hip_surgery_24h: 0.76,
            osteoporosis_treatment: 0.19,
            tonsil_cold: 0.70,
            hf_raas: 0.78,
            hf_bb: 0.74,
            copd_spirometry: 0.30,
            hba1c_mean: 52.5,
            sbp_mean: 137.0,
            sepsis_mortality: 0.16,
            cost_level: 1.0,
            foreign_born: 0.10,
            ..base
        },
    }
}

/// Hospital serving each kommun (code prefix match), per region.
pub fn home_hospital(kommun: &str) -> &'static str {
    match kommun {
        "2580" | "2582" | "2560" => "SUN",
        "2581" | "2506" | "2505" => "PIT",
        "2514" | "2513" | "2518" | "2583" => "KAL",
        "2523" | "2510" | "2521" => "GLV",
        "2584" => "KIR",
        "2482" | "2417" | "2418" => "SKE",
        "2481" | "2421" | "2422" | "2425" | "2462" | "2463" => "LYC",
        k if k.starts_with("24") => "NUS",
        k if k.starts_with("23") => "OST",
        "2284" => "ORN",
        "2283" | "2282" => "SOL",
        _ => "SUV",
    }
}

/// The university hospital in Umeå that gives highly specialised care to all four regions.
pub const UNIVERSITY_HOSPITAL_REGION: &str = "24";
pub const UNIVERSITY_HOSPITAL: &str = "NUS";

/// Main hospital of each region (for care given to visitors from other regions).
pub fn main_hospital(region_code: &str) -> &'static str {
    match region_code {
        "25" => "SUN",
        "24" => "NUS",
        "23" => "OST",
        _ => "SUV",
    }
}

/// Mean KPP cost per contact in SEK by care type (before the region's cost level).
pub const COST_INPATIENT_PER_DAY: f64 = 12_500.0;
pub const COST_SPECIALIST_VISIT: f64 = 3_200.0;
pub const COST_PRIMARY_VISIT: f64 = 1_400.0;

/// Per-region levels of the four newer clinical pathways (plausible, not real figures):
/// first-line treatment before hip replacement, a DMARD soon after a rheumatoid arthritis
/// diagnosis, amputation within a year of critical limb ischaemia, and a basic
/// investigation at a dementia diagnosis.
#[derive(Debug, Clone, Copy)]
pub struct PathwayLevels {
    pub hip_first_line: f64,
    pub ra_dmard_90d: f64,
    pub cli_amputation: f64,
    pub dementia_mmse: f64,
}

pub fn pathway_levels(region_code: &str) -> PathwayLevels {
    match region_code {
        "22" => PathwayLevels { hip_first_line: 0.62, ra_dmard_90d: 0.78, cli_amputation: 0.22, dementia_mmse: 0.71 },
        "23" => PathwayLevels { hip_first_line: 0.55, ra_dmard_90d: 0.70, cli_amputation: 0.27, dementia_mmse: 0.64 },
        "24" => PathwayLevels { hip_first_line: 0.70, ra_dmard_90d: 0.84, cli_amputation: 0.18, dementia_mmse: 0.78 },
        "25" => PathwayLevels { hip_first_line: 0.58, ra_dmard_90d: 0.74, cli_amputation: 0.25, dementia_mmse: 0.68 },
        _ => PathwayLevels { hip_first_line: 0.6, ra_dmard_90d: 0.75, cli_amputation: 0.23, dementia_mmse: 0.7 },
    }
}

/// Codes of the newer pathways (KVÅ-like codes marked unverified in docs/data-model.md).
pub const HIP_OA: &str = "M169";
pub const HIP_FIRST_LINE: &str = "QX001";
pub const HIP_REPLACEMENT: &str = "NFB49";
pub const RA: &str = "M069";
pub const METHOTREXATE: &str = "L04AX03";
pub const CLI: &str = "I702";
pub const AMPUTATION_LOWER_LEG: &str = "NGQ19";
pub const DEMENTIA: &str = "F039";
