//! Regions and kommuner of Norra sjukvårdsregionen.
//!
//! Populations come from SCB via RegionFakta (see `docs/data-model.md` for the reference
//! years). Shares of inhabitants aged 65+ are SCB figures for Norrbotten and Västerbotten;
//! for Jämtland Härjedalen and Västernorrland only region-level or no figures were found,
//! so the per-kommun shares there are assumptions (marked `assumed` below).

/// One kommun (municipality). The first two digits of the code are the county (region) code.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Kommun {
    pub code: &'static str,
    pub name: &'static str,
    pub population: u32,
    /// Share of inhabitants aged 65 or older.
    pub share_65_plus: f64,
}

/// One region (län / county council).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    /// County code, e.g. "25".
    pub code: &'static str,
    /// ISO 3166-2 code, e.g. "SE-BD".
    pub iso: &'static str,
    pub name: &'static str,
    /// Folder-friendly name used for datalager folders and config keys.
    pub slug: &'static str,
    pub kommuner: &'static [Kommun],
}

const fn k(code: &'static str, name: &'static str, population: u32, share_65_plus: f64) -> Kommun {
    Kommun { code, name, population, share_65_plus }
}

/// Norrbotten, 2025 populations.
const NORRBOTTEN: &[Kommun] = &[
    k("2505", "Arvidsjaur", 6_029, 0.29),
    k("2506", "Arjeplog", 2_578, 0.31),
    k("2510", "Jokkmokk", 4_676, 0.31),
    k("2513", "Överkalix", 3_151, 0.35),
    k("2514", "Kalix", 15_272, 0.30),
    k("2518", "Övertorneå", 3_996, 0.39),
    k("2521", "Pajala", 5_686, 0.36),
    k("2523", "Gällivare", 17_110, 0.26),
    k("2560", "Älvsbyn", 7_846, 0.27),
    k("2580", "Luleå", 80_321, 0.22),
    k("2581", "Piteå", 42_203, 0.25),
    k("2582", "Boden", 28_652, 0.26),
    k("2583", "Haparanda", 9_044, 0.33),
    k("2584", "Kiruna", 22_379, 0.22),
];

/// Västerbotten, 2023 populations.
const VASTERBOTTEN: &[Kommun] = &[
    k("2401", "Nordmaling", 7_033, 0.29),
    k("2403", "Bjurholm", 2_348, 0.29),
    k("2404", "Vindeln", 5_461, 0.28),
    k("2409", "Robertsfors", 6_740, 0.28),
    k("2417", "Norsjö", 3_924, 0.30),
    k("2418", "Malå", 2_990, 0.29),
    k("2421", "Storuman", 5_621, 0.30),
    k("2422", "Sorsele", 2_387, 0.31),
    k("2425", "Dorotea", 2_339, 0.34),
    k("2460", "Vännäs", 9_059, 0.21),
    k("2462", "Vilhelmina", 6_263, 0.29),
    k("2463", "Åsele", 2_718, 0.32),
    k("2480", "Umeå", 133_091, 0.18),
    k("2481", "Lycksele", 12_213, 0.25),
    k("2482", "Skellefteå", 76_542, 0.23),
];

/// Jämtland Härjedalen, 2024 populations; 65+ shares assumed around the region's 24.4 %.
const JAMTLAND: &[Kommun] = &[
    k("2303", "Ragunda", 5_146, 0.31),    // assumed
    k("2305", "Bräcke", 6_035, 0.30),     // assumed
    k("2309", "Krokom", 15_680, 0.23),    // assumed
    k("2313", "Strömsund", 11_023, 0.31), // assumed
    k("2321", "Åre", 12_693, 0.20),       // assumed
    k("2326", "Berg", 7_108, 0.30),       // assumed
    k("2361", "Härjedalen", 10_175, 0.29), // assumed
    k("2380", "Östersund", 64_979, 0.22), // assumed
];

/// Västernorrland, 2023 populations; 65+ shares assumed (no source found).
const VASTERNORRLAND: &[Kommun] = &[
    k("2260", "Ånge", 9_109, 0.31),         // assumed
    k("2262", "Timrå", 17_540, 0.24),       // assumed
    k("2280", "Härnösand", 24_654, 0.27),   // assumed
    k("2281", "Sundsvall", 99_213, 0.22),   // assumed
    k("2282", "Kramfors", 17_631, 0.30),    // assumed
    k("2283", "Sollefteå", 18_523, 0.30),   // assumed
    k("2284", "Örnsköldsvik", 55_478, 0.25), // assumed
];

/// The four regions of Norra sjukvårdsregionen, in county-code order.
pub const NORRA: &[Region] = &[
    Region { code: "22", iso: "SE-Y", name: "Västernorrland", slug: "vasternorrland", kommuner: VASTERNORRLAND },
    Region { code: "23", iso: "SE-Z", name: "Jämtland Härjedalen", slug: "jamtland", kommuner: JAMTLAND },
    Region { code: "24", iso: "SE-AC", name: "Västerbotten", slug: "vasterbotten", kommuner: VASTERBOTTEN },
    Region { code: "25", iso: "SE-BD", name: "Norrbotten", slug: "norrbotten", kommuner: NORRBOTTEN },
];

const fn other(code: &'static str, iso: &'static str, name: &'static str, slug: &'static str) -> Region {
    Region { code, iso, name, slug, kommuner: &[] }
}

/// Sweden's 21 regions, in county-code order: the four Norra regions with their kommuner,
/// the others by code and name only (a national federation; the synthetic datalager and
/// the kommun vocabulary cover Norra).
pub const SWEDEN: &[Region] = &[
    other("01", "SE-AB", "Stockholm", "stockholm"),
    other("03", "SE-C", "Uppsala", "uppsala"),
    other("04", "SE-D", "Sörmland", "sormland"),
    other("05", "SE-E", "Östergötland", "ostergotland"),
    other("06", "SE-F", "Jönköping", "jonkoping"),
    other("07", "SE-G", "Kronoberg", "kronoberg"),
    other("08", "SE-H", "Kalmar", "kalmar"),
    other("09", "SE-I", "Gotland", "gotland"),
    other("10", "SE-K", "Blekinge", "blekinge"),
    other("12", "SE-M", "Skåne", "skane"),
    other("13", "SE-N", "Halland", "halland"),
    other("14", "SE-O", "Västra Götaland", "vastra_gotaland"),
    other("17", "SE-S", "Värmland", "varmland"),
    other("18", "SE-T", "Örebro", "orebro"),
    other("19", "SE-U", "Västmanland", "vastmanland"),
    other("20", "SE-W", "Dalarna", "dalarna"),
    other("21", "SE-X", "Gävleborg", "gavleborg"),
    NORRA[0],
    NORRA[1],
    NORRA[2],
    NORRA[3],
];

/// Looks a region up by county code, ISO code, slug or name (case-insensitive).
pub fn find_region(key: &str) -> Option<&'static Region> {
    let key = key.trim();
    SWEDEN.iter().find(|r| {
        r.code == key
            || r.iso.eq_ignore_ascii_case(key)
            || r.slug.eq_ignore_ascii_case(key)
            || r.name.eq_ignore_ascii_case(key)
    })
}

/// Looks a kommun up by its four-digit code.
pub fn find_kommun(code: &str) -> Option<&'static Kommun> {
    NORRA.iter().flat_map(|r| r.kommuner.iter()).find(|k| k.code == code)
}

/// All kommun codes known to the catalog vocabulary, in code order.
pub fn kommun_codes() -> Vec<&'static str> {
    let mut codes: Vec<_> = NORRA.iter().flat_map(|r| r.kommuner.iter().map(|k| k.code)).collect();
    codes.sort_unstable();
    codes
}

/// The county (region) code a kommun belongs to: its first two digits.
pub fn region_code_of_kommun(kommun: &str) -> &str {
    kommun.get(..2).unwrap_or(kommun)
}

impl Region {
    pub fn population(&self) -> u32 {
        self.kommuner.iter().map(|k| k.population).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn norra_has_about_905000_inhabitants() {
        let total: u32 = NORRA.iter().map(|r| r.population()).sum();
        assert!((895_000..915_000).contains(&total), "total {total}");
    }

    #[test]
    fn kommun_codes_start_with_their_region_code() {
        for r in NORRA {
            for k in r.kommuner {
                assert_eq!(region_code_of_kommun(k.code), r.code, "{}", k.name);
            }
        }
        assert_eq!(kommun_codes().len(), 44);
    }

    #[test]
    fn regions_are_found_by_any_name() {
        assert_eq!(find_region("SE-BD").unwrap().code, "25");
        assert_eq!(find_region("norrbotten").unwrap().code, "25");
        assert_eq!(find_region("22").unwrap().slug, "vasternorrland");
        assert!(find_region("99").is_none());
        assert_eq!(find_region("Skåne").unwrap().code, "12");
    }

    #[test]
    fn sweden_has_21_regions_in_code_order_with_unique_codes() {
        assert_eq!(SWEDEN.len(), 21);
        assert!(SWEDEN.windows(2).all(|w| w[0].code < w[1].code));
        assert!(NORRA.iter().all(|r| SWEDEN.contains(r)));
    }
}
