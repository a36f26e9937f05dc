//! Kubernetes resource quantities (`500Mi`, `1G`, `0.5`, `250m`, `12e6`, plain bytes).
//!
//! The grammar is Kubernetes' own (`k8s.io/apimachinery/pkg/api/resource`): an optionally
//! signed decimal number (`1`, `1.5`, `.5`, `1.`) followed by at most one of
//! * a binary suffix `Ki Mi Gi Ti Pi Ei` (powers of 1024),
//! * a decimal suffix `m k M G T P E` (milli, then powers of 1000), or
//! * a decimal exponent `e3`, `E-2`, `e+6` (`1E` alone is exa, `1E3` is a thousand).
//!
//! The reference runner only understood binary suffixes and crashed on `500M`, `1G` and
//! plain numbers (reference §5.3); tapir accepts every form Kubernetes accepts.
//!
//! Arithmetic is exact: the number is kept as its decimal digits and scaled without
//! floating point, so `0.1Gi` or `18446744073709551615` come out to the byte. A value
//! with a fraction left over rounds **up** (`0.5` → 1 byte, `1500m` → 2 bytes,
//! `0.0001` CPU → 1 millicore), as Kubernetes' own `Value()` and `MilliValue()` do: a
//! limit must never end up smaller than what was written.

use std::fmt;

/// Why a quantity could not be read, with a fix in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct QuantityError {
    pub message: String,
    pub fix: String,
}

impl fmt::Display for QuantityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for QuantityError {}

/// Why the value `text` of the resource `name` (a task's or a conf file's
/// `resources.limits`/`requests`) is not a quantity of its kind, if it is not: memory and
/// storage as byte quantities, `cpu` as cores, GPUs as whole numbers; other names pass
/// through to Kubernetes.
pub(crate) fn resource_problem(name: &str, text: &str) -> Option<QuantityError> {
    match name {
        "memory" | "ephemeral-storage" => parse_bytes(text).err(),
        "cpu" => parse_cpu_millis(text).err(),
        gpu if super::GPU_KEYS.contains(&gpu) => text.parse::<u64>().err().map(|_| QuantityError {
            message: format!("`{text}` is not a number of GPUs"),
            fix: "use a whole number, e.g. \"1\"".into(),
        }),
        _ => None,
    }
}

/// Parses a memory or storage quantity into bytes.
///
/// Surrounding whitespace is ignored. Fractions round up to the next whole byte. A
/// `B` suffix means bytes (`100000000B`), as in the reference CLI's size strings.
/// Rejects empty text, negative values, unknown suffixes (`1mi`, `1KiB`, `1GB`),
/// `NaN`/`inf`, and values above `u64::MAX` bytes.
pub(crate) fn parse_bytes(text: &str) -> Result<u64, QuantityError> {
    let kind = Kind::Bytes;
    let number = split_number(text, kind)?;
    let (extra_exp10, factor) = match number.suffix {
        "" | "B" => (0, 1),
        "m" => (-3, 1),
        "k" => (3, 1),
        "M" => (6, 1),
        "G" => (9, 1),
        "T" => (12, 1),
        "P" => (15, 1),
        "E" => (18, 1),
        "Ki" => (0, 1 << 10),
        "Mi" => (0, 1 << 20),
        "Gi" => (0, 1 << 30),
        "Ti" => (0, 1 << 40),
        "Pi" => (0, 1 << 50),
        "Ei" => (0, 1 << 60),
        other => return Err(unknown_suffix(kind, &number, other)),
    };
    scale(&number, kind, extra_exp10, factor)
}

/// Parses a CPU quantity into millicores: `2` → 2000, `0.5` → 500, `250m` → 250.
///
/// Only the `m` suffix (and the `e` exponent form) is accepted: CPU counts cores, and a
/// suffix such as `Mi` or `k` there is almost certainly a mistake. Fractions of a
/// millicore round up.
pub(crate) fn parse_cpu_millis(text: &str) -> Result<u64, QuantityError> {
    let kind = Kind::Cpu;
    let number = split_number(text, kind)?;
    let extra_exp10 = match number.suffix {
        // Cores → millicores.
        "" => 3,
        "m" => 0,
        other => return Err(unknown_suffix(kind, &number, other)),
    };
    scale(&number, kind, extra_exp10, 1)
}

/// Formats a byte count for messages, with binary units.
///
/// * Below 1024: the exact count with `B`: `0B`, `1000B`.
/// * Otherwise the largest binary unit that is at most the value (`Ki` … `Ei`), written
///   exactly when two decimals suffice (`52428800` → `50Mi`, `1536` → `1.5Ki`,
///   `1342177280` → `1.25Gi`); such text is itself a valid Kubernetes quantity.
/// * Otherwise rounded to one decimal and marked approximate with `~`
///   (`1288490189` → `~1.2Gi`, `1025` → `~1.0Ki`).
pub(crate) fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    if bytes < 1024 {
        return format!("{bytes}B");
    }
    let bytes = u128::from(bytes);
    // Largest unit not above the value: 1024^(index + 1).
    let mut index = 0;
    while index + 1 < UNITS.len() && bytes >= 1u128 << (10 * (index + 2)) {
        index += 1;
    }
    let unit = 1u128 << (10 * (index + 1));
    if (bytes * 100) % unit == 0 {
        let hundredths = bytes * 100 / unit;
        return format!("{}{}", decimal_text(hundredths, 2), UNITS[index]);
    }
    // Round half up to tenths; rounding may carry into the next unit (1023.96Ki → 1.0Mi).
    let mut tenths = (bytes * 10 + unit / 2) / unit;
    if tenths >= 10240 && index + 1 < UNITS.len() {
        index += 1;
        let unit = 1u128 << (10 * (index + 1));
        tenths = (bytes * 10 + unit / 2) / unit;
    }
    format!("~{}.{}{}", tenths / 10, tenths % 10, UNITS[index])
}

/// `value / 10^places` written without trailing zeros in the fraction (`150`, 2 → `1.5`).
fn decimal_text(value: u128, places: u32) -> String {
    let scale = 10u128.pow(places);
    let whole = value / scale;
    let fraction = value % scale;
    if fraction == 0 {
        return whole.to_string();
    }
    let digits = format!("{fraction:0width$}", width = places as usize);
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Which kind of quantity is being read; it decides the wording of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bytes,
    Cpu,
}

impl Kind {
    fn noun(self) -> &'static str {
        match self {
            Kind::Bytes => "a Kubernetes quantity",
            Kind::Cpu => "a CPU quantity",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Bytes => {
                "write a number of bytes with an optional suffix, e.g. `512Mi`, `1G` or `1073741824`"
            }
            Kind::Cpu => "write cores (`2`, `0.5`) or millicores (`500m`)",
        }
    }
}

/// A quantity split into its parts; `digits` are the decimal digits of the number with
/// the decimal point removed, so the number is `digits × 10^exp10`.
#[derive(Debug)]
struct Number<'a> {
    /// The trimmed input, for messages.
    text: &'a str,
    /// The number as written, without sign, exponent or suffix (for fixes: `1.5`).
    written: &'a str,
    negative: bool,
    digits: Vec<u8>,
    /// Power of ten from the decimal point and the `e` exponent.
    exp10: i64,
    /// Everything after the number (and exponent).
    suffix: &'a str,
}

/// Exponents beyond this magnitude give 0, 1 or an overflow anyway; clamping keeps the
/// arithmetic on `i64` safe for absurd input such as `1e99999999999999999999`.
const EXPONENT_CLAMP: i64 = 1_000_000_000_000;

fn split_number(raw: &str, kind: Kind) -> Result<Number<'_>, QuantityError> {
    let text = raw.trim();
    if text.is_empty() {
        return Err(QuantityError {
            message: format!("the quantity is empty; it must be {}", kind.noun()),
            fix: kind.example().to_owned(),
        });
    }
    if text.chars().any(char::is_whitespace) {
        let joined: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        return Err(QuantityError {
            message: format!("`{text}` is not {}: it contains a space", kind.noun()),
            fix: format!("write it without spaces: `{joined}`"),
        });
    }
    let lowered = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if matches!(lowered.as_str(), "nan" | "inf" | "infinity") {
        return Err(QuantityError {
            message: format!("`{text}` is not {}: it is not a finite number", kind.noun()),
            fix: kind.example().to_owned(),
        });
    }

    let bytes = text.as_bytes();
    let mut position = 0;
    let mut negative = false;
    if let Some(&sign) = bytes.first()
        && (sign == b'+' || sign == b'-')
    {
        negative = sign == b'-';
        position = 1;
    }
    let number_start = position;
    let mut digits = Vec::new();
    while let Some(&byte) = bytes.get(position)
        && byte.is_ascii_digit()
    {
        digits.push(byte - b'0');
        position += 1;
    }
    let mut fraction_len: i64 = 0;
    if bytes.get(position) == Some(&b'.') {
        position += 1;
        while let Some(&byte) = bytes.get(position)
            && byte.is_ascii_digit()
        {
            digits.push(byte - b'0');
            position += 1;
            fraction_len = fraction_len.saturating_add(1);
        }
    }
    if digits.is_empty() {
        return Err(QuantityError {
            message: format!(
                "`{text}` is not {}: it does not start with a number",
                kind.noun()
            ),
            fix: kind.example().to_owned(),
        });
    }
    let written = &text[number_start..position];

    // `e3` / `E-2` is an exponent only when nothing but digits follows; `1E` is exa.
    let mut exponent: i64 = 0;
    let rest = &text[position..];
    if let Some(after_e) = rest.strip_prefix(['e', 'E']) {
        let (exponent_negative, exponent_digits) = match after_e.as_bytes().first() {
            Some(b'-') => (true, &after_e[1..]),
            Some(b'+') => (false, &after_e[1..]),
            _ => (false, after_e),
        };
        if !exponent_digits.is_empty() && exponent_digits.bytes().all(|b| b.is_ascii_digit()) {
            for byte in exponent_digits.bytes() {
                exponent = (exponent * 10 + i64::from(byte - b'0')).min(EXPONENT_CLAMP);
            }
            if exponent_negative {
                exponent = -exponent;
            }
            position = text.len();
        }
    }

    Ok(Number {
        text,
        written,
        negative,
        digits,
        exp10: exponent - fraction_len.min(EXPONENT_CLAMP),
        suffix: &text[position..],
    })
}

/// `number × 10^extra_exp10 × factor`, rounded up, checked for sign and overflow.
fn scale(
    number: &Number<'_>,
    kind: Kind,
    extra_exp10: i64,
    factor: u64,
) -> Result<u64, QuantityError> {
    let value = ceil_scaled(&number.digits, number.exp10 + extra_exp10, factor);
    if number.negative && value != Some(0) {
        let what = match kind {
            Kind::Bytes => "a size",
            Kind::Cpu => "a CPU amount",
        };
        return Err(QuantityError {
            message: format!(
                "`{}` is negative: {what} cannot be less than zero",
                number.text
            ),
            fix: format!(
                "remove the minus sign: `{}`",
                number.text.trim_start_matches('-')
            ),
        });
    }
    value.ok_or_else(|| {
        let limit = match kind {
            Kind::Bytes => format!("{} bytes (just under 16Ei)", u64::MAX),
            Kind::Cpu => format!("{} millicores", u64::MAX),
        };
        QuantityError {
            message: format!(
                "`{}` is too large: the most tapir can handle is {limit}",
                number.text
            ),
            fix: "use a smaller value".to_owned(),
        }
    })
}

/// Exactly `ceil(digits × 10^exp10 × factor)`, or `None` when it does not fit a `u64`.
fn ceil_scaled(digits: &[u8], exp10: i64, factor: u64) -> Option<u64> {
    let Some(first_nonzero) = digits.iter().position(|&d| d != 0) else {
        return Some(0);
    };
    // Multiply the decimal digits by `factor` (schoolbook, least significant first).
    let mut product: Vec<u8> = Vec::with_capacity(digits.len() + 20);
    let mut carry: u128 = 0;
    for &digit in digits[first_nonzero..].iter().rev() {
        let step = u128::from(digit) * u128::from(factor) + carry;
        product.push((step % 10) as u8);
        carry = step / 10;
    }
    while carry > 0 {
        product.push((carry % 10) as u8);
        carry /= 10;
    }
    while product.last() == Some(&0) {
        product.pop();
    }
    product.reverse();
    // `product` is non-zero, has no leading zeros, and `value = product × 10^exp10`.
    let length = product.len() as i64;
    if exp10 >= 0 {
        // u64::MAX has 20 digits; checking the length first avoids building `1e999999`.
        if length + exp10 > 20 {
            return None;
        }
        let whole = digits_to_u64(&product)?;
        return whole.checked_mul(10u64.checked_pow(u32::try_from(exp10).ok()?)?);
    }
    let fraction_digits = exp10.unsigned_abs();
    if fraction_digits >= product.len() as u64 {
        // 0 < value < 1.
        return Some(1);
    }
    let split = product.len() - fraction_digits as usize;
    let (whole, fraction) = product.split_at(split);
    let whole = digits_to_u64(whole)?;
    if fraction.iter().any(|&d| d != 0) {
        whole.checked_add(1)
    } else {
        Some(whole)
    }
}

fn digits_to_u64(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &digit| {
        value.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

fn unknown_suffix(kind: Kind, number: &Number<'_>, suffix: &str) -> QuantityError {
    let text = number.text;
    let written = number.written;
    if !suffix.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return QuantityError {
            message: format!(
                "`{text}` is not {}: unexpected `{suffix}` after the number `{written}`",
                kind.noun()
            ),
            fix: kind.example().to_owned(),
        };
    }
    let message = match kind {
        Kind::Bytes => format!("`{text}` is not {}: unknown suffix `{suffix}`", kind.noun()),
        Kind::Cpu => format!(
            "`{text}` is not {}: CPU takes no suffix `{suffix}`, only `m` (millicores)",
            kind.noun()
        ),
    };
    let fix = match kind {
        Kind::Bytes => bytes_suffix_fix(written, suffix),
        Kind::Cpu if suffix == "M" => {
            format!("write `{written}m` for millicores (lower-case `m`), or `{written}` for cores")
        }
        Kind::Cpu => kind.example().to_owned(),
    };
    QuantityError { message, fix }
}

/// A fix for a memory suffix that is nearly right (`MB`, `mi`, `KiB`, `K`, `B`).
fn bytes_suffix_fix(written: &str, suffix: &str) -> String {
    let lower = suffix.to_ascii_lowercase();
    if matches!(lower.as_str(), "b" | "byte" | "bytes") {
        return format!(
            "write the plain number `{written}`: a quantity without a suffix counts bytes"
        );
    }
    let mut letters = lower.chars();
    let magnitude = letters.next();
    let rest: String = letters.collect();
    let names = match magnitude {
        Some('k') => Some(("Ki", "kibibytes", "k", "kilobytes")),
        Some('m') => Some(("Mi", "mebibytes", "M", "megabytes")),
        Some('g') => Some(("Gi", "gibibytes", "G", "gigabytes")),
        Some('t') => Some(("Ti", "tebibytes", "T", "terabytes")),
        Some('p') => Some(("Pi", "pebibytes", "P", "petabytes")),
        Some('e') => Some(("Ei", "exbibytes", "E", "exabytes")),
        _ => None,
    };
    let looks_like_unit = matches!(rest.as_str(), "" | "i" | "b" | "ib" | "byte" | "bytes");
    match names {
        Some((binary, binary_name, decimal, decimal_name)) if looks_like_unit => {
            let mut fix = format!("write `{written}{binary}` ({binary_name}) or `{written}{decimal}` ({decimal_name})");
            if suffix.starts_with('m') {
                fix.push_str("; a lower-case `m` means milli (one thousandth)");
            }
            fix
        }
        _ => "use a plain number of bytes, or one of the suffixes Ki Mi Gi Ti Pi Ei (powers of 1024) \
              or k M G T P E (powers of 1000), e.g. `512Mi`"
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(text: &str) -> u64 {
        match parse_bytes(text) {
            Ok(value) => value,
            Err(error) => panic!("{text:?} should parse: {error}"),
        }
    }

    fn bytes_error(text: &str) -> QuantityError {
        match parse_bytes(text) {
            Ok(value) => panic!("{text:?} should be rejected, got {value}"),
            Err(error) => error,
        }
    }

    fn cpu(text: &str) -> u64 {
        match parse_cpu_millis(text) {
            Ok(value) => value,
            Err(error) => panic!("{text:?} should parse: {error}"),
        }
    }

    fn cpu_error(text: &str) -> QuantityError {
        match parse_cpu_millis(text) {
            Ok(value) => panic!("{text:?} should be rejected, got {value}"),
            Err(error) => error,
        }
    }

    #[test]
    fn plain_numbers_are_bytes() {
        assert_eq!(bytes("128974848"), 128_974_848);
        assert_eq!(bytes("0"), 0);
        assert_eq!(bytes("+5"), 5);
        assert_eq!(bytes("007"), 7);
        assert_eq!(bytes("18446744073709551615"), u64::MAX);
    }

    #[test]
    fn b_suffix_is_bytes() {
        assert_eq!(bytes("100000000B"), 100_000_000);
        assert_eq!(bytes("0B"), 0);
        assert_eq!(bytes("1.5B"), 2);
        // Only `B` alone: `MB`, `KiB` stay refused with a suggestion.
        assert!(bytes_error("1MB").message.contains("unknown suffix `MB`"));
    }

    #[test]
    fn fractions_round_up_to_whole_bytes() {
        assert_eq!(bytes("0.5"), 1);
        assert_eq!(bytes(".5"), 1);
        assert_eq!(bytes("1."), 1);
        assert_eq!(bytes("2.0"), 2);
        assert_eq!(bytes("2.000001"), 3);
        assert_eq!(bytes("0.000000000000000000000000000000001"), 1);
        assert_eq!(bytes("0.0"), 0);
    }

    #[test]
    fn decimal_suffixes_are_powers_of_1000() {
        assert_eq!(bytes("1k"), 1_000);
        assert_eq!(bytes("500M"), 500_000_000);
        assert_eq!(bytes("1G"), 1_000_000_000);
        assert_eq!(bytes("2T"), 2_000_000_000_000);
        assert_eq!(bytes("1P"), 1_000_000_000_000_000);
        assert_eq!(bytes("1E"), 1_000_000_000_000_000_000);
        assert_eq!(bytes("1.5k"), 1_500);
    }

    #[test]
    fn binary_suffixes_are_powers_of_1024() {
        assert_eq!(bytes("1Ki"), 1024);
        assert_eq!(bytes("500Mi"), 500 * 1024 * 1024);
        assert_eq!(bytes("1.5Gi"), 1_610_612_736);
        assert_eq!(bytes("1Ti"), 1 << 40);
        assert_eq!(bytes("1Pi"), 1 << 50);
        assert_eq!(bytes("15Ei"), 15 << 60);
        // 0.1 × 2^30 = 107374182.4: exact decimal arithmetic, then round up.
        assert_eq!(bytes("0.1Gi"), 107_374_183);
        assert_eq!(bytes("0.5Ki"), 512);
    }

    #[test]
    fn milli_suffix_rounds_up() {
        assert_eq!(bytes("1500m"), 2);
        assert_eq!(bytes("2000m"), 2);
        assert_eq!(bytes("1m"), 1);
        assert_eq!(bytes("0m"), 0);
    }

    #[test]
    fn exponent_form() {
        assert_eq!(bytes("12e6"), 12_000_000);
        assert_eq!(bytes("1e3"), 1_000);
        assert_eq!(bytes("1E3"), 1_000);
        assert_eq!(bytes("1e+3"), 1_000);
        assert_eq!(bytes("1.5e3"), 1_500);
        assert_eq!(bytes("1e-3"), 1);
        assert_eq!(bytes("15e-1"), 2);
        assert_eq!(bytes("1e19"), 10_000_000_000_000_000_000);
        assert_eq!(bytes("1e-99999999999999999999999"), 1);
        assert_eq!(bytes("0e99999999999999999999999"), 0);
    }

    #[test]
    fn surrounding_whitespace_is_ignored() {
        assert_eq!(bytes("  1Gi\n"), 1 << 30);
        assert_eq!(bytes("\t42 "), 42);
    }

    #[test]
    fn empty_is_rejected() {
        for text in ["", "   "] {
            let error = bytes_error(text);
            assert!(error.message.contains("empty"), "{error}");
            assert!(error.fix.contains("512Mi"), "{}", error.fix);
        }
    }

    #[test]
    fn inner_whitespace_is_rejected_with_the_joined_form() {
        let error = bytes_error("1 Gi");
        assert!(error.message.contains("`1 Gi`"), "{error}");
        assert!(error.fix.contains("`1Gi`"), "{}", error.fix);
    }

    #[test]
    fn negative_is_rejected() {
        let error = bytes_error("-1Gi");
        assert_eq!(
            error.message,
            "`-1Gi` is negative: a size cannot be less than zero"
        );
        assert!(error.fix.contains("`1Gi`"));
        bytes_error("-0.001");
        // Negative zero is zero, as in Kubernetes.
        assert_eq!(bytes("-0"), 0);
    }

    #[test]
    fn unknown_suffixes_name_the_suffix_and_suggest_both_units() {
        let error = bytes_error("500MB");
        assert_eq!(
            error.message,
            "`500MB` is not a Kubernetes quantity: unknown suffix `MB`"
        );
        assert_eq!(error.fix, "write `500Mi` (mebibytes) or `500M` (megabytes)");

        let error = bytes_error("1GB");
        assert_eq!(error.fix, "write `1Gi` (gibibytes) or `1G` (gigabytes)");

        let error = bytes_error("1KiB");
        assert!(error.message.contains("unknown suffix `KiB`"), "{error}");
        assert_eq!(error.fix, "write `1Ki` (kibibytes) or `1k` (kilobytes)");

        let error = bytes_error("1mi");
        assert!(error.message.contains("unknown suffix `mi`"), "{error}");
        assert!(
            error
                .fix
                .starts_with("write `1Mi` (mebibytes) or `1M` (megabytes)")
        );
        assert!(error.fix.contains("milli"), "{}", error.fix);

        let error = bytes_error("1.5K");
        assert_eq!(error.fix, "write `1.5Ki` (kibibytes) or `1.5k` (kilobytes)");

        let error = bytes_error("1Zi");
        assert!(error.message.contains("unknown suffix `Zi`"), "{error}");
        assert!(error.fix.contains("Ki Mi Gi Ti Pi Ei"), "{}", error.fix);

        bytes_error("1e");
        bytes_error("1Eq");
        bytes_error("1e3Mi");
        bytes_error("1gi");
    }

    #[test]
    fn garbage_is_rejected() {
        for text in [
            "Gi", "abc", ".", "+", "-", "e3", "1.2.3", "0x10", "1_000", "1,5Gi",
        ] {
            let error = bytes_error(text);
            assert!(
                error.message.contains(&format!("`{text}`")),
                "{text}: {error}"
            );
            assert!(!error.fix.is_empty());
        }
        let error = bytes_error("1.2.3");
        assert!(error.message.contains("unexpected `.3`"), "{error}");
    }

    #[test]
    fn not_finite_is_rejected() {
        for text in ["NaN", "nan", "inf", "-inf", "+Infinity"] {
            let error = bytes_error(text);
            assert!(
                error.message.contains("not a finite number"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn overflow_is_rejected_clearly() {
        for text in [
            "18446744073709551616",
            "18446744073709551615.1",
            "16Ei",
            "20E",
            "1e20",
            "1e99999999999999999999999",
            "99999999999999999999999999999999999999999999Ei",
        ] {
            let error = bytes_error(text);
            assert!(error.message.contains("too large"), "{text}: {error}");
            assert!(
                error.message.contains("18446744073709551615 bytes"),
                "{error}"
            );
        }
    }

    #[test]
    fn cpu_cores_and_millicores() {
        assert_eq!(cpu("2"), 2000);
        assert_eq!(cpu("0.5"), 500);
        assert_eq!(cpu(".5"), 500);
        assert_eq!(cpu("250m"), 250);
        assert_eq!(cpu("1.25"), 1250);
        assert_eq!(cpu("0"), 0);
        assert_eq!(cpu(" 4 "), 4000);
        assert_eq!(cpu("1e1"), 10_000);
        assert_eq!(cpu("0.0001"), 1);
        assert_eq!(cpu("0.5m"), 1);
    }

    #[test]
    fn cpu_rejects_other_suffixes() {
        let error = cpu_error("2Mi");
        assert_eq!(
            error.message,
            "`2Mi` is not a CPU quantity: CPU takes no suffix `Mi`, only `m` (millicores)"
        );
        assert!(error.fix.contains("500m"), "{}", error.fix);
        cpu_error("1k");
        cpu_error("1Gi");
        let error = cpu_error("500M");
        assert!(error.fix.contains("`500m`"), "{}", error.fix);
    }

    #[test]
    fn cpu_rejects_bad_input() {
        assert!(cpu_error("").message.contains("empty"));
        assert!(cpu_error("-1").message.contains("negative"));
        assert!(cpu_error("-250m").message.contains("a CPU amount"));
        assert!(
            cpu_error("many")
                .message
                .contains("does not start with a number")
        );
        assert!(cpu_error("nan").message.contains("not a finite number"));
        assert!(cpu_error("1e17").message.contains("millicores"));
    }

    #[test]
    fn never_panics_on_short_inputs() {
        let alphabet = [
            '0', '9', '.', 'e', 'E', '+', '-', 'm', 'k', 'M', 'i', 'B', ' ',
        ];
        let mut texts = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = texts
                .iter()
                .filter(|text| text.len() == texts.last().map_or(0, String::len))
                .flat_map(|text| alphabet.iter().map(move |c| format!("{text}{c}")))
                .collect();
            texts.extend(longer);
        }
        for text in &texts {
            if let Err(error) = parse_bytes(text) {
                assert!(
                    !error.message.is_empty() && !error.fix.is_empty(),
                    "{text:?}"
                );
            }
            if let Err(error) = parse_cpu_millis(text) {
                assert!(
                    !error.message.is_empty() && !error.fix.is_empty(),
                    "{text:?}"
                );
            }
        }
    }

    #[test]
    fn error_display_is_the_message() {
        let error = bytes_error("500MB");
        assert_eq!(error.to_string(), error.message);
        let boxed: Box<dyn std::error::Error> = Box::new(error);
        assert!(boxed.to_string().contains("500MB"));
    }

    #[test]
    fn format_small_values_in_bytes() {
        assert_eq!(format_bytes(0), "0B");
        assert_eq!(format_bytes(1), "1B");
        assert_eq!(format_bytes(1000), "1000B");
        assert_eq!(format_bytes(1023), "1023B");
    }

    #[test]
    fn format_exact_values() {
        assert_eq!(format_bytes(1024), "1Ki");
        assert_eq!(format_bytes(1536), "1.5Ki");
        assert_eq!(format_bytes(52_428_800), "50Mi");
        assert_eq!(format_bytes(1_342_177_280), "1.25Gi");
        assert_eq!(format_bytes(1 << 40), "1Ti");
        assert_eq!(format_bytes(1 << 50), "1Pi");
        assert_eq!(format_bytes(15 << 60), "15Ei");
        assert_eq!(format_bytes(1023 * 1024), "1023Ki");
    }

    #[test]
    fn format_inexact_values_are_marked_approximate() {
        assert_eq!(format_bytes(1025), "~1.0Ki");
        assert_eq!(format_bytes(1_288_490_189), "~1.2Gi");
        assert_eq!(format_bytes(1_048_575), "~1.0Mi");
        assert_eq!(format_bytes(u64::MAX), "~16.0Ei");
    }

    #[test]
    fn exact_format_round_trips_through_parse() {
        for value in [0u64, 1000, 1024, 1536, 52_428_800, 1_342_177_280, 15 << 60] {
            let text = format_bytes(value);
            let quantity = text.trim_end_matches('B');
            assert_eq!(bytes(quantity), value, "{text}");
        }
    }
}
