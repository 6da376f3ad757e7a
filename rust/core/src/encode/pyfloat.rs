//! Python's `repr(float)` (`float_repr_style == 'short'`).
//!
//! Both Python (David Gay's dtoa, mode 0) and Rust's `{:e}` produce the
//! shortest digit string that reads back as the same double, picking the
//! one nearest the exact value; they differ only in layout. CPython's
//! `format_float_short` switches to exponent form when the decimal point
//! position `decpt` is `<= -4` or `> 16`, always signs the exponent and
//! pads it to two digits (`1e+16`, `1e-05`), and adds `.0` to integral
//! values in positional form (`100.0`).

/// Append `repr(x)` for a finite `x`. Non-finite values are spelled
/// differently by JSON (`NaN`) and `str()` (`nan`), so callers handle them.
pub fn push_repr(out: &mut String, x: f64) {
    debug_assert!(x.is_finite());
    if x == 0.0 {
        out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
        return;
    }
    let sci = format!("{:e}", x);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|&c| c != '.').collect();
    let digits = python_tie_break(x.abs(), digits, exp);
    let decpt = exp + 1;
    if negative {
        out.push('-');
    }
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let abs = exp.unsigned_abs();
        if abs < 10 {
            out.push('0');
        }
        out.push_str(&abs.to_string());
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-decpt) as usize));
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if decpt >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', decpt - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
}

/// Digits (no point) and exponent of `x` rendered with `prec` digits after
/// the point in exponent form; Rust rounds these exactly.
fn exact_digits(x: f64, prec: usize) -> (String, i32) {
    let s = format!("{:.*e}", prec, x);
    let (m, e) = s.split_once('e').expect("{:e} always has an exponent");
    (
        m.chars().filter(|&c| c != '.').collect(),
        e.parse().expect("integer exponent"),
    )
}

/// When `x` lies exactly halfway between two shortest candidates, dtoa.c
/// (mode 0) keeps the one with an even last digit (`dig & 1` in its final
/// rounding step): `repr(562949953421312.25) == '562949953421312.2'`.
/// Rust's shortest formatting may pick the odd one, so swap it. A tie needs
/// a digit as wide as half an ulp, which only happens at 16-17 digits.
fn python_tie_break(x: f64, digits: String, exp: i32) -> String {
    let n = digits.len();
    let last = digits.as_bytes()[n - 1] - b'0';
    if n < 15 || last % 2 == 0 {
        return digits;
    }
    // One more digit, exactly rounded: a tie shows as a trailing 5.
    let (wider, wider_exp) = exact_digits(x, n);
    if wider_exp != exp || !wider.ends_with('5') {
        return digits;
    }
    let head = &wider[..n];
    let mut neighbour = digits.clone().into_bytes();
    if head == digits && last < 9 {
        neighbour[n - 1] += 1;
    } else if head.as_bytes()[..n - 1] == digits.as_bytes()[..n - 1]
        && head.as_bytes()[n - 1] + 1 == digits.as_bytes()[n - 1]
    {
        neighbour[n - 1] -= 1;
    } else {
        return digits;
    }
    // Exactly halfway only if nothing follows the 5: a double has at most
    // 767 significant decimal digits, so 780 shows all of them.
    let (full, _) = exact_digits(x, 780);
    if full.trim_end_matches('0') != wider {
        return digits;
    }
    let neighbour = String::from_utf8(neighbour).expect("ASCII digits");
    let candidate = format!("{}.{}e{}", &neighbour[..1], &neighbour[1..], exp);
    if candidate.parse::<f64>() == Ok(x) {
        neighbour
    } else {
        digits
    }
}

/// `repr(x)`, with Python's spelling of the non-finite values in `str()`.
pub fn repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let mut s = String::new();
    push_repr(&mut s, x);
    s
}

#[cfg(test)]
mod tests {
    use super::repr;

    #[test]
    fn matches_python_repr_on_layout_edges() {
        // Expected strings are CPython 3.11 `repr` output.
        let cases: &[(f64, &str)] = &[
            (0.1, "0.1"),
            (100.0, "100.0"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123456789012345678.0, "1.2345678901234568e+17"),
            (9999999999999998.0, "9999999999999998.0"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (1.5e300, "1.5e+300"),
            (1e22, "1e+22"),
            (-2.5e-7, "-2.5e-07"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.5, "2.5"),
            (1.0 / 3.0, "0.3333333333333333"),
            (123.456, "123.456"),
            (f64::NAN, "nan"),
            // Exact ties between two shortest candidates: Python keeps the
            // even last digit.
            (562949953421312.25, "562949953421312.2"),
            (562949953421312.75, "562949953421312.8"),
            (562949953421313.25, "562949953421313.2"),
            (1125899906842624.25, "1125899906842624.2"),
            (1125899906842624.75, "1125899906842624.8"),
            (2251799813685249.5, "2251799813685249.5"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for &(x, want) in cases {
            assert_eq!(repr(x), want, "repr({x:e})");
        }
    }
}
