//! Text analysis and wildcard patterns as Elasticsearch applies them: the `standard` analyzer
//! (Unicode word boundaries, lowercasing, 255-character tokens) approximated without allocation,
//! and `*`/`?` patterns matched over a whole value or a single token.

/// Longest token the standard tokenizer emits; longer runs are split (`max_token_length`).
const MAX_TOKEN_CHARS: usize = 255;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    Letter,
    Digit,
    /// One token per character (Han, Hiragana, ...), as the standard tokenizer does.
    Ideographic,
    /// `_`: joins letters and digits (WB13a/b).
    ExtendNumLet,
    /// `:` and friends: join letter–letter (WB6/7).
    MidLetter,
    /// `,` `;`: join digit–digit (WB11/12).
    MidNum,
    /// `.` `'`: join letter–letter and digit–digit.
    MidNumLet,
    Other,
}

fn class(c: char) -> Class {
    match c {
        '_'
        | '\u{203F}'
        | '\u{2040}'
        | '\u{2054}'
        | '\u{FE33}'
        | '\u{FE34}'
        | '\u{FE4D}'..='\u{FE4F}'
        | '\u{FF3F}' => Class::ExtendNumLet,
        ':' | '\u{00B7}' | '\u{0387}' | '\u{05F4}' | '\u{2027}' | '\u{FE13}' | '\u{FE55}'
        | '\u{FF1A}' => Class::MidLetter,
        ',' | ';' | '\u{037E}' | '\u{0589}' | '\u{060C}' | '\u{060D}' | '\u{066C}' | '\u{07F8}'
        | '\u{2044}' | '\u{FE10}' | '\u{FE14}' | '\u{FE50}' | '\u{FE54}' | '\u{FF0C}'
        | '\u{FF1B}' => Class::MidNum,
        '.' | '\'' | '\u{2018}' | '\u{2019}' | '\u{2024}' | '\u{FE52}' | '\u{FF07}'
        | '\u{FF0E}' => Class::MidNumLet,
        _ if c.is_ascii_alphabetic() => Class::Letter,
        _ if c.is_ascii_digit() => Class::Digit,
        _ if c.is_ascii() => Class::Other,
        _ if is_ideographic(c) => Class::Ideographic,
        _ if c.is_alphabetic() => Class::Letter,
        _ if c.is_numeric() => Class::Digit,
        _ => Class::Other,
    }
}

fn is_ideographic(c: char) -> bool {
    matches!(c,
        '\u{3040}'..='\u{309F}' // Hiragana
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{2FA1F}'
        | '\u{0E00}'..='\u{0E7F}' // Thai (dictionary-based in Lucene; one token per char here)
    )
}

/// The tokens of `text` as byte ranges into it (not lowercased: compare with [`eq_lower`]).
pub fn tokens(text: &str) -> Tokens<'_> {
    Tokens { text, pos: 0 }
}

/// Iterator over the standard tokenizer's tokens of a string.
#[derive(Clone)]
pub struct Tokens<'a> {
    text: &'a str,
    pos: usize,
}

impl<'a> Iterator for Tokens<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        let text = self.text;
        loop {
            let rest = text.get(self.pos..)?;
            let mut it = rest.char_indices();
            // Find a token start.
            let (off, c) = it.next()?;
            let cls = class(c);
            let start = self.pos + off;
            match cls {
                Class::Ideographic => {
                    self.pos = start + c.len_utf8();
                    return text.get(start..self.pos);
                }
                Class::Letter | Class::Digit | Class::ExtendNumLet => {}
                _ => {
                    self.pos = start + c.len_utf8();
                    continue;
                }
            }
            let mut end = start + c.len_utf8();
            let mut last = cls;
            let mut only_underscore = cls == Class::ExtendNumLet;
            let mut chars = 1usize;
            loop {
                if chars >= MAX_TOKEN_CHARS {
                    break;
                }
                let Some(tail) = text.get(end..) else { break };
                let mut look = tail.chars();
                let Some(n) = look.next() else { break };
                let ncls = class(n);
                match ncls {
                    Class::Letter | Class::Digit | Class::ExtendNumLet => {
                        end += n.len_utf8();
                        last = ncls;
                        chars += 1;
                        if ncls != Class::ExtendNumLet {
                            only_underscore = false;
                        }
                    }
                    Class::MidLetter | Class::MidNum | Class::MidNumLet => {
                        let Some(after) = look.next() else { break };
                        let acls = class(after);
                        let joins = match ncls {
                            Class::MidLetter => last == Class::Letter && acls == Class::Letter,
                            Class::MidNum => last == Class::Digit && acls == Class::Digit,
                            _ => {
                                (last == Class::Letter && acls == Class::Letter)
                                    || (last == Class::Digit && acls == Class::Digit)
                            }
                        };
                        if !joins {
                            break;
                        }
                        end += n.len_utf8() + after.len_utf8();
                        last = acls;
                        chars += 2;
                        only_underscore = false;
                    }
                    _ => break,
                }
            }
            self.pos = end;
            if only_underscore {
                continue;
            }
            return text.get(start..end);
        }
    }
}

/// The lowercased tokens of a query string (what `match` searches for).
pub fn analyze(text: &str) -> Vec<String> {
    tokens(text).map(|t| t.to_lowercase()).collect()
}

/// True when `token` lowercased equals `lower` (already lowercase), without allocating for ASCII.
pub fn eq_lower(token: &str, lower: &str) -> bool {
    if token.is_ascii() {
        token.len() == lower.len()
            && token
                .bytes()
                .zip(lower.bytes())
                .all(|(a, b)| a.to_ascii_lowercase() == b)
    } else {
        token.chars().flat_map(char::to_lowercase).eq(lower.chars())
    }
}

/// One element of a wildcard pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pat {
    Char(char),
    /// `?` in an Elasticsearch `wildcard` query: exactly one character.
    One,
    /// `*`: any sequence, possibly empty.
    Star,
}

/// A compiled wildcard pattern, matched against a whole string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    pat: Vec<Pat>,
    /// Compare characters case-insensitively (pattern stored lowercased).
    fold: bool,
}

impl Glob {
    /// A pattern from its elements; `fold` lowercases it and compares case-insensitively.
    pub fn new(pat: Vec<Pat>, fold: bool) -> Glob {
        let pat = if fold {
            pat.into_iter()
                .map(|p| match p {
                    Pat::Char(c) => Pat::Char(lower_char(c)),
                    other => other,
                })
                .collect()
        } else {
            pat
        };
        Glob { pat, fold }
    }

    /// Parses Elasticsearch `wildcard` query syntax: `*`, `?`, `\` escapes.
    pub fn from_es(pattern: &str, fold: bool) -> Glob {
        let mut pat = Vec::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            pat.push(match c {
                '*' => Pat::Star,
                '?' => Pat::One,
                '\\' => match chars.next() {
                    Some(n) => Pat::Char(n),
                    None => Pat::Char('\\'),
                },
                c => Pat::Char(c),
            });
        }
        Glob::new(pat, fold)
    }

    /// True when the whole of `s` matches.
    pub fn matches(&self, s: &str) -> bool {
        let p = &self.pat;
        let (mut pi, mut si) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while si < s.len() {
            let Some(c) = s.get(si..).and_then(|t| t.chars().next()) else {
                return false;
            };
            let c_cmp = if self.fold { lower_char(c) } else { c };
            match p.get(pi) {
                Some(Pat::Star) => {
                    star = Some((pi, si));
                    pi += 1;
                    continue;
                }
                Some(Pat::One) => {
                    pi += 1;
                    si += c.len_utf8();
                    continue;
                }
                Some(Pat::Char(pc)) if *pc == c_cmp => {
                    pi += 1;
                    si += c.len_utf8();
                    continue;
                }
                _ => {}
            }
            match star {
                Some((sp, ss)) => {
                    let Some(skip) = s.get(ss..).and_then(|t| t.chars().next()) else {
                        return false;
                    };
                    let next = ss + skip.len_utf8();
                    star = Some((sp, next));
                    pi = sp + 1;
                    si = next;
                }
                None => return false,
            }
        }
        p.get(pi..)
            .is_some_and(|rest| rest.iter().all(|x| *x == Pat::Star))
    }
}

/// Lowercase of one character (first char of a multi-char lowercase; exact for nearly all).
fn lower_char(c: char) -> char {
    if c.is_ascii() {
        c.to_ascii_lowercase()
    } else {
        c.to_lowercase().next().unwrap_or(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<String> {
        analyze(s)
    }

    #[test]
    fn standard_tokenizer_word_boundaries() {
        assert_eq!(toks("Hello, World!"), ["hello", "world"]);
        assert_eq!(toks("www.example.com"), ["www.example.com"]);
        assert_eq!(
            toks("aws-cli/2.15.30 Python/3.11"),
            ["aws", "cli", "2.15.30", "python", "3.11"]
        );
        assert_eq!(toks("foo_bar can't 1,000"), ["foo_bar", "can't", "1,000"]);
        assert_eq!(toks("a.1 x. y"), ["a", "1", "x", "y"]);
        assert_eq!(toks("arn:aws:iam::123"), ["arn:aws:iam", "123"]);
        assert_eq!(toks("Größe 東京"), ["größe", "東", "京"]);
        assert_eq!(toks("__ _x"), ["_x"]);
        assert!(toks("!!! --- ").is_empty());
    }

    #[test]
    fn long_tokens_are_split_at_255_chars() {
        let s = "a".repeat(300);
        let t = toks(&s);
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].len(), 255);
    }

    #[test]
    fn glob_matches_whole_value() {
        let g = Glob::from_es("*document*", false);
        assert!(g.matches("CreatedocumentX"));
        assert!(!g.matches("CreateDocument"));
        assert!(Glob::from_es("a?c", false).matches("abc"));
        assert!(!Glob::from_es("a?c", false).matches("ac"));
        assert!(Glob::from_es("a\\?c", false).matches("a?c"));
        assert!(!Glob::from_es("a\\?c", false).matches("abc"));
        assert!(Glob::from_es("*", false).matches(""));
        assert!(Glob::from_es("*a*b*", false).matches("xxaxxbxx"));
        assert!(!Glob::from_es("*a*b", false).matches("xxaxxbxx"));
        assert!(Glob::from_es("CREATE*", true).matches("createdocument"));
        assert!(Glob::from_es("é*", false).matches("été"));
    }
}
