//! `~SEQ(var, start, step, end)` (`~SEQx` for hexadecimal) and `~LST(var, a, b, ...)` /
//! `~LST({v1, v2}, {a, b}, {c, d})` lines: the rest of the line is read once per value, with the
//! variables defined as parameters. Parsing is pure; the preprocessor does the repeating.

use crate::error::MAX_LOGICAL_LINES;

/// A parsed `~SEQ` or `~LST` line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequence {
    /// For each repetition, the parameters to define before the text is read.
    pub assignments: Vec<Vec<(String, String)>>,
    /// The text after the `)`.
    pub text: String,
}

/// Parses a `~SEQ...` / `~LST...` line. `params` substitutes parameters in `~SEQ` numbers.
pub fn parse(line: &str, params: impl Fn(&str) -> String) -> Result<Sequence, String> {
    if let Some(rest) = line.strip_prefix("~SEQ") {
        parse_seq(rest, params)
    } else if let Some(rest) = line.strip_prefix("~LST") {
        parse_lst(rest)
    } else {
        Err(format!("{line:?} is neither ~SEQ nor ~LST"))
    }
}

fn parse_seq(rest: &str, params: impl Fn(&str) -> String) -> Result<Sequence, String> {
    let (hex, rest) = match rest.strip_prefix('x') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    let inner = rest
        .trim_start()
        .strip_prefix('(')
        .ok_or("~SEQ needs '(' after it")?;
    let close = inner.find(')').ok_or("~SEQ is missing its ')'")?;
    let text = inner[close + 1..].trim_start().to_owned();
    let mut parts = inner[..close].split(',').map(str::trim);
    let var = parts
        .next()
        .filter(|v| !v.is_empty())
        .ok_or("~SEQ needs a variable name")?;
    let numbers: Vec<i64> = parts
        .map(|p| parse_number(&params(p)))
        .collect::<Option<_>>()
        .ok_or("~SEQ values must be integers")?;
    let (start, step, end) = match numbers[..] {
        [end] => (
            if end < 0 { -1 } else { 1 },
            if end < 1 { -1 } else { 1 },
            end,
        ),
        [start, end] => (start, if start <= end { 1 } else { -1 }, end),
        [start, step, end] => (start, step, end),
        _ => {
            return Err(
                "~SEQ takes one to three numbers: end, start and end, or start, step and end"
                    .into(),
            );
        }
    };
    if step == 0 || (start < end && step < 0) || (start > end && step > 0) {
        return Err(format!(
            "~SEQ({var}, {start}, {step}, {end}) never reaches its end"
        ));
    }
    if hex && (start < 0 || end < 0) {
        return Err("~SEQx takes positive numbers only".into());
    }
    let count = (end - start) / step + 1;
    if usize::try_from(count).map_or(true, |c| c > MAX_LOGICAL_LINES) {
        return Err(format!("~SEQ({var}, ...) repeats {count} times"));
    }
    let assignments = (0..count)
        .map(|i| {
            let v = start + i * step;
            let value = if hex { format!("{v:x}") } else { v.to_string() };
            vec![(var.to_owned(), value)]
        })
        .collect();
    Ok(Sequence { assignments, text })
}

fn parse_number(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let value = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        i64::from_str_radix(hex, 16).ok()?
    } else if digits.len() > 1 && digits.starts_with('0') {
        i64::from_str_radix(&digits[1..], 8).ok()?
    } else {
        digits.parse().ok()?
    };
    Some(if negative { -value } else { value })
}

fn parse_lst(rest: &str) -> Result<Sequence, String> {
    let inner = rest
        .trim_start()
        .strip_prefix('(')
        .ok_or("~LST needs '(' after it")?;
    // Values stop at ',', '}' and ')', so the first ')' ends the list.
    let close = inner.find(')').ok_or("~LST is missing its ')'")?;
    let text = inner[close + 1..].trim_start().to_owned();
    let groups = split_groups(&inner[..close])?;
    let (names, sets) = groups
        .split_first()
        .ok_or("~LST needs variables and values")?;
    if sets.is_empty() {
        return Err("~LST needs at least one value".into());
    }
    let mut assignments = Vec::with_capacity(sets.len());
    for set in sets {
        if set.len() > names.len() {
            return Err("~LST has more values than variables in a set".into());
        }
        assignments.push(
            names
                .iter()
                .enumerate()
                .map(|(i, n)| (n.clone(), set.get(i).cloned().unwrap_or_default()))
                .collect(),
        );
    }
    Ok(Sequence { assignments, text })
}

/// `{a, b}, {1, 2}, x` into `[[a, b], [1, 2], [x]]`.
fn split_groups(s: &str) -> Result<Vec<Vec<String>>, String> {
    let mut groups = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        if let Some(body) = rest.strip_prefix('{') {
            let end = body.find('}').ok_or("~LST has a '{' without '}'")?;
            groups.push(
                body[..end]
                    .split(',')
                    .map(|v| v.trim().to_owned())
                    .collect(),
            );
            rest = body[end + 1..].trim_start();
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            groups.push(vec![rest[..end].trim().to_owned()]);
            rest = &rest[end..];
        }
        rest = match rest.strip_prefix(',') {
            Some(r) => r.trim_start(),
            None if rest.is_empty() => rest,
            None => return Err(format!("~LST: unexpected {rest:?}")),
        };
    }
    Ok(groups)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(s: &Sequence) -> Vec<String> {
        s.assignments.iter().map(|a| a[0].1.clone()).collect()
    }

    #[test]
    fn seq_counts_with_defaults_steps_and_hex() {
        let s = parse(
            "~SEQ(SUBNET, 0, 3) ip_address 10.0.${SUBNET}.1",
            str::to_owned,
        )
        .unwrap();
        assert_eq!(values(&s), ["0", "1", "2", "3"]);
        assert_eq!(s.text, "ip_address 10.0.${SUBNET}.1");
        let s = parse("~SEQx(S, 0x90, 0x10, 0xc0) x", str::to_owned).unwrap();
        assert_eq!(values(&s), ["90", "a0", "b0", "c0"]);
        assert_eq!(
            values(&parse("~SEQ(N, 3) x", str::to_owned).unwrap()),
            ["1", "2", "3"]
        );
        assert_eq!(
            values(&parse("~SEQ(N, 3, 1) x", str::to_owned).unwrap()),
            ["3", "2", "1"]
        );
    }

    #[test]
    fn seq_parameters_may_be_definitions_and_bad_sequences_are_refused() {
        let s = parse("~SEQ(N, 1, $LAST) x", |p| p.replace("$LAST", "2")).unwrap();
        assert_eq!(values(&s), ["1", "2"]);
        assert!(parse("~SEQ(N, 1, -1, 5) x", str::to_owned).is_err());
        assert!(parse("~SEQ(N, 1, 0, 5) x", str::to_owned).is_err());
        assert!(parse("~SEQ(N, 1, 10000000) x", str::to_owned).is_err());
        assert!(parse("~SEQ N 1 x", str::to_owned).is_err());
    }

    #[test]
    fn lst_sets_one_or_several_variables_and_blanks_missing_values() {
        let s = parse("~LST(IP, 1, 2) 192.168.${IP}.1", str::to_owned).unwrap();
        assert_eq!(values(&s), ["1", "2"]);
        let s = parse(
            "~LST({IP, IP1}, {10,1},{20}) 192.168.${IP}.${IP1}",
            str::to_owned,
        )
        .unwrap();
        assert_eq!(
            s.assignments,
            [
                vec![("IP".into(), "10".into()), ("IP1".into(), "1".into())],
                vec![("IP".into(), "20".into()), ("IP1".into(), String::new())]
            ]
        );
        assert!(parse("~LST({A}, {1, 2}) x", str::to_owned).is_err());
    }
}
