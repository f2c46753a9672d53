//! Durations and rates as written in the config file: `"250ms"`, `"10s"`,
//! `"5m"`, `"1h"`; rates `"N/s"`, `"N/min"`, `"N/h"`.

use std::time::Duration;

/// Parses `"<integer><unit>"` with unit `ms`, `s`, `m`, `min` or `h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` has no unit (use ms, s, m or h)"))?;
    let (num, unit) = text.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" | "min" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("`{text}` has an unknown unit (use ms, s, m or h)")),
    };
    if d > MAX_DURATION {
        // also keeps `Instant::now() + d` from overflowing (a panic) later
        return Err(format!(
            "`{text}` is longer than the maximum of 8760h (a year)"
        ));
    }
    Ok(d)
}

/// The longest duration a config may give: a year.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// A rate `"N/s"`, `"N/min"` or `"N/h"`: returns (count, period).
pub fn parse_rate(text: &str) -> Result<(u32, Duration), String> {
    let (num, per) = text
        .trim()
        .split_once('/')
        .ok_or_else(|| format!("`{text}` is not a rate like \"10/s\""))?;
    let n: u32 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    if n == 0 {
        return Err(format!("`{text}` must allow at least one request"));
    }
    let period = match per.trim() {
        "s" => Duration::from_secs(1),
        "min" | "m" => Duration::from_secs(60),
        "h" => Duration::from_secs(3600),
        _ => return Err(format!("`{text}` has an unknown period (use s, min or h)")),
    };
    Ok((n, period))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("10 parsecs").is_err());
        assert_eq!(parse_duration("8760h"), Ok(MAX_DURATION));
        let err = parse_duration("8761h").unwrap_err();
        assert!(err.contains("maximum"), "{err}");
        assert!(parse_duration("18446744073709551615s").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("50/s"), Ok((50, Duration::from_secs(1))));
        assert_eq!(parse_rate("10/min"), Ok((10, Duration::from_secs(60))));
        assert_eq!(parse_rate("3/h"), Ok((3, Duration::from_secs(3600))));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("5/day").is_err());
        assert!(parse_rate("fast").is_err());
    }
}
