//! Civil-date arithmetic on days since 1970-01-01 (the Arrow Date32 representation) and
//! microseconds since the epoch (Arrow Timestamp(Microsecond), local Swedish time).

pub const MICROS_PER_DAY: i64 = 86_400_000_000;
pub const MICROS_PER_HOUR: i64 = 3_600_000_000;

/// Days since 1970-01-01 for a civil date (proleptic Gregorian).
pub fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y } as i64;
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) as i32
}

/// Civil date (year, month, day) of a day number.
pub fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z as i64 + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    ((if m <= 2 { y + 1 } else { y }) as i32, m, d)
}

pub fn days_in_year(y: i32) -> i32 {
    days_from_civil(y + 1, 1, 1) - days_from_civil(y, 1, 1)
}

/// Age in whole years at a date, from birth year and month (the day of birth is not held;
/// a person counts as a year older from the first of their birth month).
pub fn age_at(birth_year: i32, birth_month: u32, day: i32) -> i32 {
    let (y, m, _) = civil_from_days(day);
    y - birth_year - if m < birth_month { 1 } else { 0 }
}

pub fn micros_of_day(day: i32) -> i64 {
    day as i64 * MICROS_PER_DAY
}

pub fn day_of_micros(t: i64) -> i32 {
    t.div_euclid(MICROS_PER_DAY) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        for d in (-20_000..40_000).step_by(37) {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        assert_eq!(days_in_year(2024), 366);
        assert_eq!(days_in_year(2023), 365);
    }

    #[test]
    fn age_counts_from_the_birth_month() {
        let day = days_from_civil(2024, 6, 15);
        assert_eq!(age_at(1950, 6, day), 74);
        assert_eq!(age_at(1950, 7, day), 73);
        assert_eq!(age_at(1950, 1, day), 74);
    }
}
