//! Splitting a line into words the three ways keepalived does:
//!
//! - [`split_words`], for every line: words end at whitespace; a word that starts with `"` runs
//!   to the next `"` (quotes removed, nothing escaped); `'` is an ordinary character.
//! - [`split_quoted`], re-reading the whole line for keywords that take a command (`script`,
//!   `misc_path`, `notify_*`): `"` and `'` both group, a backslash keeps itself and the next
//!   character.
//! - [`split_command`], for the command itself (word 1 of [`split_quoted`]): quotes group and
//!   backslash escapes as in a shell (`\n`, `\t`, `\xHH`, `\NNN`, `\\`, `\"`, ...).

/// Whitespace as keepalived's parser knows it.
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// A `"` or `'` that is never closed; holds the text from it on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnterminatedQuote(pub String);

/// The words of a configuration line.
pub fn split_words(line: &str) -> Result<Vec<String>, UnterminatedQuote> {
    let mut words = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches(is_space);
        if rest.is_empty() {
            return Ok(words);
        }
        if let Some(quoted) = rest.strip_prefix('"') {
            let Some(end) = quoted.find('"') else {
                return Err(UnterminatedQuote(rest.to_owned()));
            };
            words.push(quoted[..end].to_owned());
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find(|c| is_space(c) || c == '"').unwrap_or(rest.len());
            words.push(rest[..end].to_owned());
            rest = &rest[end..];
        }
    }
}

/// The words of a line whose keyword takes a command: quotes (`"` or `'`) group and are
/// removed; a backslash and the character after it are kept as written.
pub fn split_quoted(line: &str) -> Result<Vec<String>, UnterminatedQuote> {
    split_shell(line, false)
}

/// A command's program and arguments: quotes group, backslashes escape.
pub fn split_command(command: &str) -> Result<Vec<String>, UnterminatedQuote> {
    split_shell(command, true)
}

fn split_shell(line: &str, escapes: bool) -> Result<Vec<String>, UnterminatedQuote> {
    let chars: Vec<char> = line.chars().collect();
    let mut words = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        while i < chars.len() && is_space(chars[i]) {
            i += 1;
        }
        if i >= chars.len() {
            break;
        }
        let start = i;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while i < chars.len() {
            let c = chars[i];
            match (quote, c) {
                (_, '\\') => {
                    i += 1;
                    let Some(&next) = chars.get(i) else {
                        // A backslash ends the line: keepalived gives up on the words.
                        return Err(UnterminatedQuote(chars[start..].iter().collect()));
                    };
                    if escapes {
                        i += escape(&chars[i..], &mut word);
                        continue;
                    }
                    word.push('\\');
                    word.push(next);
                }
                (Some(q), c) if c == q => quote = None,
                (None, '"' | '\'') => quote = Some(c),
                (None, c) if is_space(c) => break,
                (_, c) => word.push(c),
            }
            i += 1;
        }
        if quote.is_some() {
            return Err(UnterminatedQuote(chars[start..].iter().collect()));
        }
        words.push(word);
    }
    Ok(words)
}

/// Decodes the escape after a backslash into `out`; returns how many characters it used.
fn escape(after: &[char], out: &mut String) -> usize {
    let c = after[0];
    match c {
        'x' if after.get(1).is_some_and(char::is_ascii_hexdigit) => {
            let digits: String = after[1..]
                .iter()
                .take(2)
                .take_while(|d| d.is_ascii_hexdigit())
                .collect();
            if let Ok(v) = u8::from_str_radix(&digits, 16) {
                out.push(char::from(v));
            }
            1 + digits.len()
        }
        'c' if after.len() > 1 => {
            out.push(char::from((after[1] as u8) & 0x1f));
            2
        }
        '0'..='7' => {
            let digits: String = after
                .iter()
                .take(3)
                .take_while(|d| ('0'..='7').contains(*d))
                .collect();
            let v = u32::from_str_radix(&digits, 8).unwrap_or(0) & 0xff;
            out.push(char::from(v as u8));
            digits.len()
        }
        _ => {
            out.push(match c {
                'a' => '\x07',
                'b' => '\x08',
                'E' => '\x1b',
                'f' => '\x0c',
                'n' => '\n',
                'r' => '\r',
                't' => '\t',
                'v' => '\x0b',
                other => other,
            });
            1
        }
    }
}

/// A command's program and arguments, and the words written after it.
pub type Command = (Vec<String>, Vec<String>);

/// A command keyword's command (`script "/usr/bin/pgrep -x haproxy"`) as program and
/// arguments, and the words after the command (a user and group for notify scripts; keepalived
/// ignores them after `script`). `None` when there is no command.
pub fn command_of(line: &str) -> Result<Option<Command>, UnterminatedQuote> {
    let words = split_quoted(line)?;
    let Some(command) = words.get(1) else {
        return Ok(None);
    };
    let argv = split_command(command)?;
    if argv.is_empty() {
        return Ok(None);
    }
    Ok(Some((argv, words[2..].to_vec())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_split_at_whitespace_and_double_quotes_group() {
        assert_eq!(
            split_words("auth_pass \"two words\" x").unwrap(),
            ["auth_pass", "two words", "x"]
        );
        assert_eq!(
            split_words("a\"b c\"d").unwrap(),
            ["a", "b c", "d"],
            "a quote starts a new word"
        );
        assert_eq!(split_words("it's 'not grouped'").unwrap().len(), 3);
        assert_eq!(split_words("  \t ").unwrap(), Vec::<String>::new());
        assert!(split_words("x \"open").is_err());
    }

    #[test]
    fn a_quoted_command_becomes_program_and_arguments() {
        let (argv, rest) = command_of("script \"/usr/bin/pgrep -x 'ha proxy'\"")
            .unwrap()
            .unwrap();
        assert_eq!(argv, ["/usr/bin/pgrep", "-x", "ha proxy"]);
        assert!(rest.is_empty());
    }

    #[test]
    fn an_unquoted_command_keeps_only_its_first_word_and_says_what_follows() {
        let (argv, rest) = command_of("script /usr/bin/pgrep -x haproxy")
            .unwrap()
            .unwrap();
        assert_eq!(argv, ["/usr/bin/pgrep"]);
        assert_eq!(rest, ["-x", "haproxy"]);
    }

    #[test]
    fn command_escapes_are_decoded_like_a_shell() {
        assert_eq!(
            split_command(r#"/bin/echo a\ b \x41\101 \"q\" \\"#).unwrap(),
            ["/bin/echo", "a b", "AA", "\"q\"", "\\"]
        );
        assert_eq!(split_quoted(r"x a\ b").unwrap(), ["x", r"a\ b"]);
        assert!(split_command("'open").is_err());
        assert!(command_of("script").unwrap().is_none());
    }
}
