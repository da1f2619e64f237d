//! Tokeniser for STIX 2.1 patterns.
//!
//! Hand-written so that it allocates only for literal values and never compiles a
//! regular expression: it runs once for every indicator a node ingests. It follows
//! the token rules of the OASIS grammar (`STIXPattern.g4`, STIX 2.1): keywords are
//! upper case and case-sensitive, `true`/`false` are lower case, identifiers are
//! `[A-Za-z_][A-Za-z0-9_-]*`, whitespace and `/* */` / `//` comments are skipped.
//! Where the ANTLR lexer would fall back to a shorter token that can never parse
//! (an odd-length `h'…'`, say), we report the malformed literal directly, which gives
//! the same verdict with a clearer message.

use base64::Engine as _;

use super::PatternError;
use crate::stix::timestamp::Timestamp;

/// A keyword of the patterning language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keyword {
    And,
    Or,
    Not,
    FollowedBy,
    Like,
    Matches,
    IsSuperset,
    IsSubset,
    Exists,
    Last,
    In,
    Start,
    Stop,
    Seconds,
    Within,
    Repeats,
    Times,
}

impl Keyword {
    pub(crate) fn from_identifier(s: &str) -> Option<Keyword> {
        Some(match s {
            "AND" => Keyword::And,
            "OR" => Keyword::Or,
            "NOT" => Keyword::Not,
            "FOLLOWEDBY" => Keyword::FollowedBy,
            "LIKE" => Keyword::Like,
            "MATCHES" => Keyword::Matches,
            "ISSUPERSET" => Keyword::IsSuperset,
            "ISSUBSET" => Keyword::IsSubset,
            "EXISTS" => Keyword::Exists,
            "LAST" => Keyword::Last,
            "IN" => Keyword::In,
            "START" => Keyword::Start,
            "STOP" => Keyword::Stop,
            "SECONDS" => Keyword::Seconds,
            "WITHIN" => Keyword::Within,
            "REPEATS" => Keyword::Repeats,
            "TIMES" => Keyword::Times,
            _ => return None,
        })
    }
}

/// A number as written: sign and digits are kept apart so that the parser can
/// tell `+5` (allowed after `WITHIN`) from `-5` (not allowed) and report range
/// errors where they belong.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Token<'a> {
    LBrack,
    RBrack,
    LParen,
    RParen,
    Colon,
    Dot,
    Comma,
    Star,
    Eq,
    Neq,
    Lt,
    Le,
    Gt,
    Ge,
    /// An identifier; `hyphen` tells whether it contains `-` (allowed only in
    /// object type names).
    Ident {
        text: &'a str,
        hyphen: bool,
    },
    Keyword(Keyword),
    Str(String),
    /// An integer literal; `None` when it does not fit in an `i64`.
    Int {
        value: Option<i64>,
        negative: bool,
    },
    Float {
        value: f64,
        negative: bool,
    },
    Bool(bool),
    Hex(Vec<u8>),
    Binary(Vec<u8>),
    /// The text between the quotes of a valid `t'…'` literal.
    Timestamp(&'a str),
    Eof,
}

impl Token<'_> {
    /// How the token is named in error messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            Token::LBrack => "'['".into(),
            Token::RBrack => "']'".into(),
            Token::LParen => "'('".into(),
            Token::RParen => "')'".into(),
            Token::Colon => "':'".into(),
            Token::Dot => "'.'".into(),
            Token::Comma => "','".into(),
            Token::Star => "'*'".into(),
            Token::Eq => "'='".into(),
            Token::Neq => "'!='".into(),
            Token::Lt => "'<'".into(),
            Token::Le => "'<='".into(),
            Token::Gt => "'>'".into(),
            Token::Ge => "'>='".into(),
            Token::Ident { text, .. } => format!("identifier '{text}'"),
            Token::Keyword(k) => format!("keyword {}", keyword_text(*k)),
            Token::Str(_) => "string literal".into(),
            Token::Int { .. } => "integer literal".into(),
            Token::Float { .. } => "float literal".into(),
            Token::Bool(_) => "boolean literal".into(),
            Token::Hex(_) => "hex literal".into(),
            Token::Binary(_) => "binary literal".into(),
            Token::Timestamp(_) => "timestamp literal".into(),
            Token::Eof => "end of pattern".into(),
        }
    }
}

/// The source spelling of a keyword.
pub(crate) fn keyword_text(k: Keyword) -> &'static str {
    match k {
        Keyword::And => "AND",
        Keyword::Or => "OR",
        Keyword::Not => "NOT",
        Keyword::FollowedBy => "FOLLOWEDBY",
        Keyword::Like => "LIKE",
        Keyword::Matches => "MATCHES",
        Keyword::IsSuperset => "ISSUPERSET",
        Keyword::IsSubset => "ISSUBSET",
        Keyword::Exists => "EXISTS",
        Keyword::Last => "LAST",
        Keyword::In => "IN",
        Keyword::Start => "START",
        Keyword::Stop => "STOP",
        Keyword::Seconds => "SECONDS",
        Keyword::Within => "WITHIN",
        Keyword::Repeats => "REPEATS",
        Keyword::Times => "TIMES",
    }
}

/// Base64 as the grammar writes it (standard alphabet, padded). Trailing bits
/// that are not zero are tolerated, as the reference grammar only checks the
/// alphabet and the padding shape.
const BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::RequireCanonical),
);

/// Encodes bytes the way `Display` writes a `b'…'` literal.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

pub(crate) struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

/// Whitespace as the grammar defines it (`WS` rule).
fn is_ws(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t'
            | '\r'
            | '\n'
            | '\u{0B}'
            | '\u{0C}'
            | '\u{85}'
            | '\u{A0}'
            | '\u{1680}'
            | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}'
    )
}

pub(super) fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

pub(super) fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(src: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            pos: 0,
        }
    }

    /// Builds an error at a byte offset, converting it to a character offset.
    pub(crate) fn error_at(&self, byte: usize, message: impl Into<String>) -> PatternError {
        PatternError::at_byte(self.src, byte, message)
    }

    fn peek_byte(&self, off: usize) -> Option<u8> {
        self.bytes.get(self.pos + off).copied()
    }

    /// Skips whitespace and comments.
    fn skip_trivia(&mut self) {
        loop {
            let rest = &self.src[self.pos..];
            let Some(c) = rest.chars().next() else {
                return;
            };
            if is_ws(c) {
                self.pos += c.len_utf8();
            } else if let Some(body) = rest.strip_prefix("/*") {
                match body.find("*/") {
                    Some(end) => self.pos += 2 + end + 2,
                    // Unterminated: leave it; `/` is then an unexpected character.
                    None => return,
                }
            } else if rest.starts_with("//") {
                let end = rest.find(['\r', '\n']).unwrap_or(rest.len());
                self.pos += end;
            } else {
                return;
            }
        }
    }

    /// Returns the next token and the byte offset where it starts.
    pub(crate) fn next_token(&mut self) -> Result<(Token<'a>, usize), PatternError> {
        self.skip_trivia();
        let start = self.pos;
        let Some(&b) = self.bytes.get(start) else {
            return Ok((Token::Eof, start));
        };
        let simple = |lexer: &mut Self, len: usize, tok: Token<'a>| {
            lexer.pos += len;
            Ok((tok, start))
        };
        match b {
            b'[' => simple(self, 1, Token::LBrack),
            b']' => simple(self, 1, Token::RBrack),
            b'(' => simple(self, 1, Token::LParen),
            b')' => simple(self, 1, Token::RParen),
            b':' => simple(self, 1, Token::Colon),
            b',' => simple(self, 1, Token::Comma),
            b'*' => simple(self, 1, Token::Star),
            b'=' => {
                if self.peek_byte(1) == Some(b'=') {
                    simple(self, 2, Token::Eq)
                } else {
                    simple(self, 1, Token::Eq)
                }
            }
            b'!' if self.peek_byte(1) == Some(b'=') => simple(self, 2, Token::Neq),
            b'<' => match self.peek_byte(1) {
                Some(b'=') => simple(self, 2, Token::Le),
                Some(b'>') => simple(self, 2, Token::Neq),
                _ => simple(self, 1, Token::Lt),
            },
            b'>' => {
                if self.peek_byte(1) == Some(b'=') {
                    simple(self, 2, Token::Ge)
                } else {
                    simple(self, 1, Token::Gt)
                }
            }
            b'\'' => {
                let s = self.string_body(start)?;
                Ok((Token::Str(s), start))
            }
            b'.' => {
                if self.peek_byte(1).is_some_and(|c| c.is_ascii_digit()) {
                    self.number(start)
                } else {
                    simple(self, 1, Token::Dot)
                }
            }
            b'0'..=b'9' => self.number(start),
            b'+' | b'-' => {
                let next = self.peek_byte(1);
                let after = self.peek_byte(2);
                if next.is_some_and(|c| c.is_ascii_digit())
                    || (next == Some(b'.') && after.is_some_and(|c| c.is_ascii_digit()))
                {
                    self.number(start)
                } else {
                    Err(self.error_at(start, format!("unexpected character '{}'", b as char)))
                }
            }
            b'h' | b'b' | b't' if self.peek_byte(1) == Some(b'\'') => {
                self.prefixed_literal(b, start)
            }
            _ if is_ident_start(b) => {
                let mut end = start + 1;
                let mut hyphen = false;
                while let Some(&c) = self.bytes.get(end) {
                    if !is_ident_continue(c) {
                        break;
                    }
                    hyphen |= c == b'-';
                    end += 1;
                }
                self.pos = end;
                let text = &self.src[start..end];
                let tok = if hyphen {
                    Token::Ident { text, hyphen }
                } else if let Some(k) = Keyword::from_identifier(text) {
                    Token::Keyword(k)
                } else if text == "true" {
                    Token::Bool(true)
                } else if text == "false" {
                    Token::Bool(false)
                } else {
                    Token::Ident { text, hyphen }
                };
                Ok((tok, start))
            }
            _ => {
                let c = self.src[start..].chars().next().unwrap_or('\u{FFFD}');
                Err(self.error_at(start, format!("unexpected character {c:?}")))
            }
        }
    }

    /// Reads a quoted string starting at the opening quote at `self.pos`;
    /// only `\'` and `\\` are escapes.
    fn string_body(&mut self, start: usize) -> Result<String, PatternError> {
        let mut i = self.pos + 1;
        let mut out = String::new();
        let mut seg = i;
        loop {
            match self.bytes.get(i) {
                None => return Err(self.error_at(start, "unterminated string literal")),
                Some(b'\'') => {
                    out.push_str(&self.src[seg..i]);
                    self.pos = i + 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    out.push_str(&self.src[seg..i]);
                    match self.bytes.get(i + 1) {
                        Some(b'\'') => out.push('\''),
                        Some(b'\\') => out.push('\\'),
                        _ => {
                            return Err(self.error_at(
                                i,
                                "invalid escape in string literal (only \\' and \\\\ are allowed)",
                            ));
                        }
                    }
                    i += 2;
                    seg = i;
                }
                Some(_) => i += 1,
            }
        }
    }

    /// Reads an integer or float literal (`[+-]?(0|[1-9][0-9]*)` or
    /// `[+-]?[0-9]*\.[0-9]+`).
    fn number(&mut self, start: usize) -> Result<(Token<'a>, usize), PatternError> {
        let mut i = start;
        let negative = self.bytes.get(i) == Some(&b'-');
        if matches!(self.bytes.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let digits_start = i;
        while self.bytes.get(i).is_some_and(|c| c.is_ascii_digit()) {
            i += 1;
        }
        let is_float = self.bytes.get(i) == Some(&b'.')
            && self.bytes.get(i + 1).is_some_and(|c| c.is_ascii_digit());
        if is_float {
            i += 1;
            while self.bytes.get(i).is_some_and(|c| c.is_ascii_digit()) {
                i += 1;
            }
            self.pos = i;
            let value: f64 = self.src[start..i]
                .parse()
                .map_err(|_| self.error_at(start, "invalid float literal"))?;
            return Ok((Token::Float { value, negative }, start));
        }
        let digits = &self.src[digits_start..i];
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(self.error_at(start, "integer literal with a leading zero"));
        }
        self.pos = i;
        let value = self.src[start..i].parse::<i64>().ok();
        Ok((Token::Int { value, negative }, start))
    }

    /// Reads `h'…'`, `b'…'` or `t'…'`; `self.pos` is at the prefix letter.
    fn prefixed_literal(
        &mut self,
        prefix: u8,
        start: usize,
    ) -> Result<(Token<'a>, usize), PatternError> {
        let body_start = start + 2;
        let Some(rel_end) = self.src[body_start..].find('\'') else {
            return Err(self.error_at(start, "unterminated literal"));
        };
        let body_end = body_start + rel_end;
        let body = &self.src[body_start..body_end];
        let tok = match prefix {
            b'h' => {
                let b = body.as_bytes();
                if !b.len().is_multiple_of(2) {
                    return Err(
                        self.error_at(start, "hex literal must have an even number of digits")
                    );
                }
                let mut out = Vec::with_capacity(b.len() / 2);
                for pair in b.chunks_exact(2) {
                    match (hex_value(pair[0]), hex_value(pair[1])) {
                        (Some(h), Some(l)) => out.push(h << 4 | l),
                        _ => {
                            return Err(
                                self.error_at(start, "hex literal contains a non-hex digit")
                            );
                        }
                    }
                }
                Token::Hex(out)
            }
            b'b' => {
                if !valid_base64_shape(body.as_bytes()) {
                    return Err(
                        self.error_at(start, "binary literal must be non-empty, padded base64")
                    );
                }
                let bytes = BASE64
                    .decode(body)
                    .map_err(|e| self.error_at(start, format!("invalid base64: {e}")))?;
                Token::Binary(bytes)
            }
            _ => {
                if !timestamp_shape(body.as_bytes()) {
                    return Err(
                        self.error_at(start, "timestamp literal must be YYYY-MM-DDTHH:MM:SS[.s+]Z")
                    );
                }
                Timestamp::parse(body)
                    .map_err(|e| self.error_at(start, format!("invalid timestamp literal: {e}")))?;
                Token::Timestamp(body)
            }
        };
        self.pos = body_end + 1;
        Ok((tok, start))
    }
}

/// `(B64{4})* (B64{4} | B64{3}= | B64{2}==)` — the grammar's `BinaryLiteral` body.
fn valid_base64_shape(b: &[u8]) -> bool {
    let is_char = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    if b.is_empty() || !b.len().is_multiple_of(4) {
        return false;
    }
    let (head, last) = b.split_at(b.len() - 4);
    if !head.iter().all(is_char) {
        return false;
    }
    match last {
        [a, b2, c, d] if is_char(a) && is_char(b2) && is_char(c) && is_char(d) => true,
        [a, b2, c, b'='] if is_char(a) && is_char(b2) && is_char(c) => true,
        [a, b2, b'=', b'='] if is_char(a) && is_char(b2) => true,
        _ => false,
    }
}

/// The lexical shape the grammar's `TimestampLiteral` requires: month 01-12, day
/// 01-31, hour 00-23, minute 00-59, second 00-60, optional fraction, `Z`.
fn timestamp_shape(b: &[u8]) -> bool {
    let d = |i: usize| b.get(i).is_some_and(|c| c.is_ascii_digit());
    let at = |i: usize, c: u8| b.get(i) == Some(&c);
    if !(b.len() >= 20
        && (0..4).all(d)
        && at(4, b'-')
        && d(5)
        && d(6)
        && at(7, b'-')
        && d(8)
        && d(9)
        && at(10, b'T')
        && d(11)
        && d(12)
        && at(13, b':')
        && d(14)
        && d(15)
        && at(16, b':')
        && d(17)
        && d(18))
    {
        return false;
    }
    let two = |i: usize| u32::from(b[i] - b'0') * 10 + u32::from(b[i + 1] - b'0');
    let (month, day, hour, minute, second) = (two(5), two(8), two(11), two(14), two(17));
    if !((1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour <= 23
        && minute <= 59
        && second <= 60)
    {
        return false;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let frac_start = i;
        while d(i) {
            i += 1;
        }
        if i == frac_start {
            return false;
        }
    }
    at(i, b'Z') && i + 1 == b.len()
}
