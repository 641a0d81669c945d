//! Splits KIR text into tokens with 1-based line/column positions.
//!
//! The lexer knows almost nothing about KIR: names, mnemonics and numbers are
//! all [`Tok::Word`]s, and the parser decides what a word means from where it
//! stands. That keeps constants (`-1.5e-3`, `inf`, `nan:0x7fc00001`), dotted
//! names (`block_id.x`, `shuffle.xor`) and entity ids (`v3`, `p0`) one token
//! each without the lexer having to guess which it is looking at.
//!
//! Newlines are tokens because KIR is line-oriented: one statement per line,
//! which lets the parser say "expected `,`" on the line that is missing it
//! instead of at the start of the next statement. `;` starts a comment that
//! runs to the end of the line.

use super::ParseError;

/// A position in the source, 1-based, counted in characters.
#[derive(Copy, Clone, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(crate) fn error(self, message: impl Into<String>) -> ParseError {
        ParseError { line: self.line, column: self.column, message: message.into() }
    }
}

#[derive(Clone, PartialEq, Debug)]
pub(crate) enum Tok {
    /// A run of `[A-Za-z0-9_.+-]` (never containing `..`), plus the `:` of
    /// `nan:0x...`.
    Word(String),
    /// A double-quoted string, escapes resolved.
    Str(String),
    /// `@name` or `@"name"`: a kernel name.
    KernelName(String),
    Punct(&'static str),
    Newline,
    Eof,
}

impl Tok {
    /// How the token reads in an error message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::Word(w) => format!("`{w}`"),
            Tok::Str(s) => format!("string {}", super::print::quote(s)),
            Tok::KernelName(n) => format!("`@{n}`"),
            Tok::Punct(p) => format!("`{p}`"),
            Tok::Newline => "end of line".to_string(),
            Tok::Eof => "end of input".to_string(),
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub tok: Tok,
    pub pos: Pos,
}

const PUNCTS: [&str; 10] = ["..", "=", ",", ":", "[", "]", "{", "}", "(", ")"];

fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '+' | '-')
}

struct Cursor<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
    rest: &'a str,
    pos: Pos,
}

impl<'a> Cursor<'a> {
    fn peek(&mut self) -> Option<char> {
        self.chars.peek().copied()
    }

    /// The character after the next one.
    fn peek2(&self) -> Option<char> {
        let mut it = self.rest.chars();
        it.next();
        it.next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        self.rest = &self.rest[c.len_utf8()..];
        if c == '\n' {
            self.pos.line += 1;
            self.pos.column = 1;
        } else {
            self.pos.column += 1;
        }
        Some(c)
    }
}

/// Tokenizes `src`; the last token is always [`Tok::Eof`].
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let mut cur = Cursor { chars: src.chars().peekable(), rest: src, pos: Pos { line: 1, column: 1 } };
    let mut out = Vec::new();
    while let Some(c) = cur.peek() {
        let pos = cur.pos;
        match c {
            '\n' => {
                cur.bump();
                out.push(Token { tok: Tok::Newline, pos });
            }
            c if c.is_whitespace() => {
                cur.bump();
            }
            ';' => {
                while cur.peek().is_some_and(|c| c != '\n') {
                    cur.bump();
                }
            }
            '"' => {
                cur.bump();
                let s = lex_string(&mut cur, pos)?;
                out.push(Token { tok: Tok::Str(s), pos });
            }
            '@' => {
                cur.bump();
                let name = if cur.peek() == Some('"') {
                    let start = cur.pos;
                    cur.bump();
                    lex_string(&mut cur, start)?
                } else {
                    let name = lex_word(&mut cur);
                    if name.is_empty() {
                        return Err(pos.error("expected a kernel name after `@`"));
                    }
                    name
                };
                out.push(Token { tok: Tok::KernelName(name), pos });
            }
            c if is_word_char(c) && !(c == '.' && cur.peek2() == Some('.')) => {
                let w = lex_word(&mut cur);
                out.push(Token { tok: Tok::Word(w), pos });
            }
            _ => {
                let p = PUNCTS.iter().find(|p| cur.rest.starts_with(**p));
                match p {
                    Some(p) => {
                        for _ in 0..p.len() {
                            cur.bump();
                        }
                        out.push(Token { tok: Tok::Punct(p), pos });
                    }
                    None => return Err(pos.error(format!("unexpected character `{}`", c.escape_debug()))),
                }
            }
        }
    }
    out.push(Token { tok: Tok::Eof, pos: cur.pos });
    Ok(out)
}

fn lex_word(cur: &mut Cursor<'_>) -> String {
    let mut w = String::new();
    while let Some(c) = cur.peek() {
        // `..` separates loop bounds (`v0..v1`), so it ends a word; no number
        // or name contains two dots in a row.
        if c == '.' && cur.peek2() == Some('.') {
            break;
        }
        let nan_payload = c == ':' && (w == "nan" || w == "-nan");
        if !is_word_char(c) && !nan_payload {
            break;
        }
        w.push(c);
        cur.bump();
    }
    w
}

/// Lexes the rest of a string whose opening quote (at `start`) was consumed.
fn lex_string(cur: &mut Cursor<'_>, start: Pos) -> Result<String, ParseError> {
    let mut s = String::new();
    loop {
        let pos = cur.pos;
        match cur.bump() {
            None | Some('\n') => return Err(start.error("unterminated string")),
            Some('"') => return Ok(s),
            Some('\\') => match cur.bump() {
                Some('"') => s.push('"'),
                Some('\\') => s.push('\\'),
                Some('n') => s.push('\n'),
                Some('t') => s.push('\t'),
                Some('r') => s.push('\r'),
                Some('u') => s.push(lex_unicode_escape(cur, pos)?),
                _ => return Err(pos.error("unknown escape in string (expected \\\" \\\\ \\n \\t \\r or \\u{...})")),
            },
            Some(c) => s.push(c),
        }
    }
}

/// `\u{hex}` after the `u`.
fn lex_unicode_escape(cur: &mut Cursor<'_>, pos: Pos) -> Result<char, ParseError> {
    let bad = || pos.error("bad unicode escape in string (expected \\u{hex})");
    if cur.bump() != Some('{') {
        return Err(bad());
    }
    let mut hex = String::new();
    while let Some(c) = cur.peek() {
        if c == '}' || hex.len() > 6 {
            break;
        }
        hex.push(c);
        cur.bump();
    }
    if cur.bump() != Some('}') {
        return Err(bad());
    }
    u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(src: &str) -> Vec<Tok> {
        tokenize(src).unwrap().into_iter().map(|t| t.tok).collect()
    }

    #[test]
    fn loop_bounds_split_at_double_dot() {
        let toks = words("v0..v1 1.5e-3..-inf");
        assert_eq!(
            toks,
            vec![
                Tok::Word("v0".into()),
                Tok::Punct(".."),
                Tok::Word("v1".into()),
                Tok::Word("1.5e-3".into()),
                Tok::Punct(".."),
                Tok::Word("-inf".into()),
                Tok::Eof
            ]
        );
    }

    #[test]
    fn nan_payload_and_type_colon() {
        let toks = words("v3: f32 = const nan:0x7fc00001 ; comment");
        assert_eq!(toks[0], Tok::Word("v3".into()));
        assert_eq!(toks[1], Tok::Punct(":"));
        assert_eq!(toks[5], Tok::Word("nan:0x7fc00001".into()));
        assert_eq!(toks[6], Tok::Eof);
    }

    #[test]
    fn positions_are_one_based_characters() {
        let toks = tokenize("\"é\" x\n  y").unwrap();
        assert_eq!(toks[1].pos, Pos { line: 1, column: 5 });
        assert_eq!(toks[3].pos, Pos { line: 2, column: 3 });
    }

    #[test]
    fn strings_unescape() {
        assert_eq!(words(r#""a\"b\\c\u{e9}""#)[0], Tok::Str("a\"b\\c\u{e9}".into()));
    }

    #[test]
    fn lexical_errors_have_positions() {
        let e = tokenize("ok\n  \"abc").unwrap_err();
        assert_eq!((e.line, e.column), (2, 3));
        let e = tokenize("a # b").unwrap_err();
        assert_eq!((e.line, e.column), (1, 3));
        let e = tokenize("\"\\q\"").unwrap_err();
        assert_eq!((e.line, e.column), (1, 2));
        let e = tokenize("@ x").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
        assert!(tokenize("\"\\u{110000}\"").is_err());
        assert!(tokenize("\"\\u{12").is_err());
    }
}
