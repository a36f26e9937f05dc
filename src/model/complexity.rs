//! The documented Task API ScaleRule `complexity` string: coefficient × n^exponent,
//! where n is the measured target size of a channel in bytes (see `resolve::sizing`).
//!
//! The documented pattern is `^[-+]?\d*(\.\d+)?\*?n(\*\*\d+)?$`, e.g. `25*n**1`, `2*n`,
//! `n`, `0.5n`, `.5*n`, `1.5*n**2`, `-n`. The reference parser only handled integer
//! coefficients and required the `**k` part; this one takes every form the pattern
//! allows: an empty coefficient is 1 (a bare sign gives ±1), a missing exponent is 1.
//! Current Kaapana spells the same rule as an integer `scale_factor`, which is
//! `factor × n` ([`from_scale_factor`]).

use std::fmt;

/// `coefficient × n^exponent`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Complexity {
    pub coefficient: f64,
    pub exponent: u32,
}

/// Current Kaapana's integer `scale_factor`: `factor × n`.
///
/// A factor beyond ±2^53 is rounded to the nearest `f64`; such factors are meaningless
/// as memory multipliers anyway.
pub(crate) fn from_scale_factor(factor: i64) -> Complexity {
    Complexity {
        coefficient: factor as f64,
        exponent: 1,
    }
}

const EXAMPLES: &str = "write [coefficient][*]n[**exponent], e.g. `2*n`, `0.5n`, `n` or `25*n**1`";

/// Parses a complexity string exactly as the documented pattern allows (no surrounding
/// or inner whitespace, since the schema pattern would refuse it too).
pub(crate) fn parse(text: &str) -> Result<Complexity, String> {
    let invalid =
        |reason: &str| format!("`{text}` is not a scale-rule complexity: {reason}; {EXAMPLES}");
    if text.is_empty() {
        return Err(format!("the scale-rule complexity is empty; {EXAMPLES}"));
    }
    if text.chars().any(char::is_whitespace) {
        return Err(invalid("it contains spaces"));
    }

    let bytes = text.as_bytes();
    let mut position = 0;
    if matches!(bytes.first(), Some(b'+' | b'-')) {
        position += 1;
    }
    let digits_start = position;
    position += count_digits(&bytes[position..]);
    let has_whole_digits = position > digits_start;
    let mut has_fraction = false;
    if bytes.get(position) == Some(&b'.') {
        let fraction_digits = count_digits(&bytes[position + 1..]);
        if fraction_digits == 0 {
            return Err(invalid(
                "a decimal point must be followed by digits (write `0.5`, not `5.`)",
            ));
        }
        position += 1 + fraction_digits;
        has_fraction = true;
    }
    let coefficient_text = &text[..position];
    if bytes.get(position) == Some(&b'*') {
        position += 1;
    }
    if bytes.get(position) != Some(&b'n') {
        let reason = if text.contains('n') {
            "the coefficient must be a plain decimal number"
        } else {
            "it does not mention the size `n`"
        };
        return Err(invalid(reason));
    }
    position += 1;

    let exponent = match &text[position..] {
        "" => 1,
        rest => {
            let Some(exponent_text) = rest.strip_prefix("**") else {
                let reason = if rest.starts_with('^') {
                    "write powers with `**` (`n**2`), not `^`"
                } else {
                    "unexpected text after `n`"
                };
                return Err(invalid(reason));
            };
            if exponent_text.is_empty()
                || count_digits(exponent_text.as_bytes()) != exponent_text.len()
            {
                return Err(invalid("the exponent must be a whole number, e.g. `n**2`"));
            }
            exponent_text
                .parse::<u32>()
                .map_err(|_| invalid("the exponent is too large"))?
        }
    };

    let coefficient = if has_whole_digits || has_fraction {
        coefficient_text
            .parse::<f64>()
            .map_err(|_| invalid("the coefficient is not a number"))?
    } else if coefficient_text == "-" {
        -1.0
    } else {
        1.0
    };
    if !coefficient.is_finite() {
        return Err(invalid("the coefficient is too large"));
    }
    Ok(Complexity {
        coefficient,
        exponent,
    })
}

fn count_digits(bytes: &[u8]) -> usize {
    bytes.iter().take_while(|b| b.is_ascii_digit()).count()
}

impl Complexity {
    /// `coefficient × n^exponent` in bytes, rounded up, at most `u64::MAX`; a negative
    /// result (negative coefficient) is 0.
    ///
    /// A fractional coefficient is taken as the shortest decimal that gives back its `f64`
    /// (so `1.1` is 11/10, not 1.100000000000000088…), a whole one at its exact value,
    /// and the product is computed exactly
    /// while it fits 128 bits; `1.1*n` of 100 is 110, not 111. Only results far beyond
    /// any memory size fall back to floating point (and then saturate).
    pub(crate) fn apply(&self, n: u64) -> u64 {
        let coefficient = self.coefficient;
        if coefficient.is_nan() || coefficient <= 0.0 {
            return 0;
        }
        let power = u128::from(n).checked_pow(self.exponent);
        if power == Some(0) {
            return 0;
        }
        if coefficient.is_infinite() {
            return u64::MAX;
        }
        if let Some(power) = power
            && let Some(result) = exact_ceil_product(coefficient, power)
        {
            return result;
        }
        // Far beyond 2^128 before dividing by the coefficient's decimal places: float
        // precision no longer matters. `as` saturates at u64::MAX (and maps NaN to 0).
        let exponent = f64::from(self.exponent);
        (coefficient * (n as f64).powf(exponent)).ceil() as u64
    }
}

/// `ceil(coefficient × power)` computed on the coefficient's shortest decimal form, or
/// `None` when the intermediate product does not fit a `u128`.
fn exact_ceil_product(coefficient: f64, power: u128) -> Option<u64> {
    // A whole coefficient is taken at its exact value (`2^63`, not `9223372036854776000`).
    if coefficient.fract() == 0.0 && coefficient < u128::MAX as f64 {
        let product = (coefficient as u128).checked_mul(power)?;
        return Some(u64::try_from(product).unwrap_or(u64::MAX));
    }
    // `Display` for f64 never uses exponent notation: `1e-30` prints all its digits.
    let decimal = coefficient.to_string();
    let (whole, fraction) = decimal.split_once('.').unwrap_or((&decimal, ""));
    let mantissa_digits = format!("{whole}{fraction}");
    let mantissa_digits = mantissa_digits.trim_start_matches('0');
    let mantissa: u128 = if mantissa_digits.is_empty() {
        0
    } else {
        mantissa_digits.parse().ok()?
    };
    let product = mantissa.checked_mul(power)?;
    let Some(divisor) = u32::try_from(fraction.len())
        .ok()
        .and_then(|places| 10u128.checked_pow(places))
    else {
        // The divisor exceeds any u128, so 0 < value < 1.
        return Some(u64::from(product > 0));
    };
    let quotient = product / divisor + u128::from(product % divisor != 0);
    Some(u64::try_from(quotient).unwrap_or(u64::MAX))
}

impl fmt::Display for Complexity {
    /// The pattern's own form, shortest spelling: `n`, `-n`, `25*n`, `1.5*n**2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.coefficient == 1.0 {
            f.write_str("n")?;
        } else if self.coefficient == -1.0 {
            f.write_str("-n")?;
        } else {
            write!(f, "{}*n", self.coefficient)?;
        }
        if self.exponent != 1 {
            write!(f, "**{}", self.exponent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complexity(text: &str) -> Complexity {
        match parse(text) {
            Ok(value) => value,
            Err(error) => panic!("{text:?} should parse: {error}"),
        }
    }

    fn rejected(text: &str) -> String {
        match parse(text) {
            Ok(value) => panic!("{text:?} should be rejected, got {value:?}"),
            Err(error) => error,
        }
    }

    fn c(coefficient: f64, exponent: u32) -> Complexity {
        Complexity {
            coefficient,
            exponent,
        }
    }

    #[test]
    fn documented_forms_parse() {
        assert_eq!(complexity("25*n**1"), c(25.0, 1));
        assert_eq!(complexity("2*n"), c(2.0, 1));
        assert_eq!(complexity("n"), c(1.0, 1));
        assert_eq!(complexity("0.5n"), c(0.5, 1));
        assert_eq!(complexity("1.5*n**2"), c(1.5, 2));
        assert_eq!(complexity("-n"), c(-1.0, 1));
    }

    #[test]
    fn every_form_the_pattern_allows_parses() {
        assert_eq!(complexity(".5*n"), c(0.5, 1));
        assert_eq!(complexity("-.5n"), c(-0.5, 1));
        assert_eq!(complexity("+n"), c(1.0, 1));
        assert_eq!(complexity("*n"), c(1.0, 1));
        assert_eq!(complexity("-*n"), c(-1.0, 1));
        assert_eq!(complexity("+3n**2"), c(3.0, 2));
        assert_eq!(complexity("n**0"), c(1.0, 0));
        assert_eq!(complexity("n**3"), c(1.0, 3));
        assert_eq!(complexity("0*n"), c(0.0, 1));
        assert_eq!(complexity("007*n**002"), c(7.0, 2));
        assert_eq!(
            complexity("4294967295n**4294967295"),
            c(4_294_967_295.0, u32::MAX)
        );
    }

    #[test]
    fn malformed_forms_are_rejected_with_the_input_and_an_example() {
        for text in [
            "5.*n", "2**n", "2*n*", "2*n**", "n**1.5", "n**-1", "n^2", "2 * n", " n", "x", "2*m",
            "1e3*n", "2x*n", "n2", "nn", "--n", ".n", "2*N",
        ] {
            let error = rejected(text);
            assert!(error.contains(&format!("`{text}`")), "{text}: {error}");
            assert!(error.contains("`2*n`"), "{text}: {error}");
        }
        assert!(rejected("n^2").contains("`**`"));
        assert!(rejected("2 * n").contains("spaces"));
        assert!(rejected("n**1.5").contains("whole number"));
        assert!(rejected("5.*n").contains("decimal point"));
        assert!(rejected("n**4294967296").contains("too large"));
        assert!(rejected("").contains("empty"));
    }

    #[test]
    fn accepts_exactly_what_the_documented_pattern_accepts() {
        let pattern = regex::Regex::new(r"^[-+]?\d*(\.\d+)?\*?n(\*\*\d+)?$").expect("pattern");
        let alphabet = ['1', '0', '.', '*', 'n', '-', '+', ' '];
        let mut texts = vec![String::new()];
        for _ in 0..6 {
            let longer: Vec<String> = texts
                .iter()
                .filter(|text| text.len() == texts.last().map_or(0, String::len))
                .flat_map(|text| alphabet.iter().map(move |c| format!("{text}{c}")))
                .collect();
            texts.extend(longer);
        }
        assert!(texts.len() > 250_000);
        for text in &texts {
            assert_eq!(parse(text).is_ok(), pattern.is_match(text), "{text:?}");
        }
    }

    #[test]
    fn huge_coefficient_is_rejected() {
        let text = format!("{}*n", "9".repeat(400));
        assert!(rejected(&text).contains("too large"));
    }

    #[test]
    fn apply_computes_coefficient_times_power() {
        assert_eq!(complexity("25*n**1").apply(1000), 25_000);
        assert_eq!(complexity("2*n").apply(1700), 3400);
        assert_eq!(complexity("n").apply(42), 42);
        assert_eq!(complexity("1.5*n**2").apply(10), 150);
        assert_eq!(complexity("n**0").apply(0), 1);
        assert_eq!(complexity("3*n**0").apply(12345), 3);
        assert_eq!(complexity("n**2").apply(0), 0);
        assert_eq!(complexity("2*n").apply(0), 0);
    }

    #[test]
    fn apply_rounds_up() {
        assert_eq!(complexity("0.5n").apply(3), 2);
        assert_eq!(complexity(".5*n").apply(4), 2);
        assert_eq!(complexity("0.001n").apply(1), 1);
        assert_eq!(complexity("0.1n").apply(10), 1);
    }

    #[test]
    fn apply_is_exact_for_decimal_coefficients() {
        // 1.1 as f64 is slightly above 1.1; naive float math would give 111 here.
        assert_eq!(complexity("1.1*n").apply(100), 110);
        assert_eq!(complexity("0.3*n").apply(10), 3);
        assert_eq!(complexity("2.675n").apply(1000), 2675);
        assert_eq!(complexity("n").apply(u64::MAX), u64::MAX);
        assert_eq!(complexity("3n").apply(1 << 60), 3 << 60);
        assert_eq!(
            complexity("0.000000000000000000000000000000000000000001n").apply(u64::MAX),
            1
        );
    }

    #[test]
    fn apply_saturates() {
        assert_eq!(complexity("2*n").apply(u64::MAX), u64::MAX);
        assert_eq!(complexity("n**2").apply(u64::MAX), u64::MAX);
        assert_eq!(complexity("n**4294967295").apply(2), u64::MAX);
        assert_eq!(complexity("1.5*n**3").apply(1 << 50), u64::MAX);
        let huge = Complexity {
            coefficient: 1e300,
            exponent: 1,
        };
        assert_eq!(huge.apply(1), u64::MAX);
        assert_eq!(huge.apply(0), 0);
        let infinite = Complexity {
            coefficient: f64::INFINITY,
            exponent: 1,
        };
        assert_eq!(infinite.apply(5), u64::MAX);
        assert_eq!(infinite.apply(0), 0);
    }

    #[test]
    fn apply_negative_or_zero_is_zero() {
        assert_eq!(complexity("-n").apply(1000), 0);
        assert_eq!(complexity("-2.5*n**2").apply(1000), 0);
        assert_eq!(complexity("0*n").apply(1000), 0);
        let nan = Complexity {
            coefficient: f64::NAN,
            exponent: 1,
        };
        assert_eq!(nan.apply(1000), 0);
    }

    #[test]
    fn scale_factor_is_integer_times_n() {
        assert_eq!(from_scale_factor(3), c(3.0, 1));
        assert_eq!(from_scale_factor(3).apply(1700), 5100);
        assert_eq!(from_scale_factor(0).apply(1700), 0);
        assert_eq!(from_scale_factor(-4).apply(1700), 0);
        assert_eq!(from_scale_factor(i64::MAX).apply(1), 1u64 << 63);
        assert_eq!(from_scale_factor(i64::MAX).apply(2), u64::MAX);
    }

    #[test]
    fn display_uses_the_pattern_form_and_round_trips() {
        assert_eq!(c(1.0, 1).to_string(), "n");
        assert_eq!(c(-1.0, 1).to_string(), "-n");
        assert_eq!(c(25.0, 1).to_string(), "25*n");
        assert_eq!(c(1.5, 2).to_string(), "1.5*n**2");
        assert_eq!(c(0.5, 0).to_string(), "0.5*n**0");
        for text in [
            "25*n**1",
            "2*n",
            "n",
            "0.5n",
            "1.5*n**2",
            "-n",
            ".5*n",
            "-0.25n**3",
        ] {
            let value = complexity(text);
            assert_eq!(complexity(&value.to_string()), value, "{text}");
        }
    }
}
