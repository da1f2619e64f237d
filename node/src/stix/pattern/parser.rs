//! Recursive-descent parser for STIX 2.1 patterns, with the reference validator's
//! semantic checks.

use super::lexer::{Keyword, Lexer, Token};
use super::{
    Comparison, ComparisonExpression, ComparisonOperator, Constant, MAX_STIX_INT, Number,
    ObjectPath, ObservationExpression, PathComponent, Pattern, PatternError, Qualifier,
    QualifierKind,
};

/// Deepest nesting of parentheses / brackets accepted, so that hostile input cannot
/// exhaust the stack.
const MAX_DEPTH: usize = 200;

/// [`super::parse`] without the fast path: every error, every shape the fast path
/// does not take, and the reference the fast path is tested against.
pub(super) fn parse_general(input: &str) -> Result<Pattern, PatternError> {
    // The reference validator insists that a pattern opens with `[` after any
    // number of `(`; a leading comment, for one, is refused.
    let first = input
        .char_indices()
        .find(|(_, c)| *c != '(' && !c.is_whitespace());
    match first {
        Some((_, '[')) => {}
        Some((i, _)) => {
            return Err(PatternError::at_byte(
                input,
                i,
                "a pattern must start with an observation expression '['",
            ));
        }
        None => return Err(PatternError::at_byte(input, input.len(), "empty pattern")),
    }
    let mut p = Parser::new(input)?;
    let expression = p.observation_expressions()?;
    if p.tok != Token::Eof {
        return Err(p.unexpected("AND, OR, FOLLOWEDBY, a qualifier or the end of the pattern"));
    }
    Ok(Pattern { expression })
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    tok: Token<'a>,
    at: usize,
    depth: usize,
}

type PResult<T> = Result<T, PatternError>;

impl<'a> Parser<'a> {
    fn new(src: &'a str) -> PResult<Self> {
        let mut lexer = Lexer::new(src);
        let (tok, at) = lexer.next_token()?;
        Ok(Parser {
            lexer,
            tok,
            at,
            depth: 0,
        })
    }

    fn bump(&mut self) -> PResult<Token<'a>> {
        let (next, at) = self.lexer.next_token()?;
        self.at = at;
        Ok(std::mem::replace(&mut self.tok, next))
    }

    fn error(&self, at: usize, msg: impl Into<String>) -> PatternError {
        self.lexer.error_at(at, msg)
    }

    fn unexpected(&self, expected: &str) -> PatternError {
        self.error(
            self.at,
            format!("expected {expected}, found {}", self.tok.describe()),
        )
    }

    fn expect(&mut self, tok: Token<'static>, what: &str) -> PResult<()> {
        if self.tok == tok {
            self.bump()?;
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn is_kw(&self, k: Keyword) -> bool {
        self.tok == Token::Keyword(k)
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.error(self.at, "pattern nested too deeply"));
        }
        Ok(())
    }

    // observationExpressions: FOLLOWEDBY < OR < AND, all left-associative.
    fn observation_expressions(&mut self) -> PResult<ObservationExpression> {
        let mut left = self.observation_or()?;
        while self.is_kw(Keyword::FollowedBy) {
            self.bump()?;
            let right = self.observation_or()?;
            left = ObservationExpression::FollowedBy(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn observation_or(&mut self) -> PResult<ObservationExpression> {
        let mut left = self.observation_and()?;
        while self.is_kw(Keyword::Or) {
            self.bump()?;
            let right = self.observation_and()?;
            left = ObservationExpression::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn observation_and(&mut self) -> PResult<ObservationExpression> {
        let mut left = self.observation_expression()?;
        while self.is_kw(Keyword::And) {
            self.bump()?;
            let right = self.observation_expression()?;
            left = ObservationExpression::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    /// `[ … ]` or `( … )`, then any qualifiers. Qualifiers applied directly to a
    /// `[ … ]` must be of distinct kinds (reference validator rule); a
    /// parenthesised group may be qualified repeatedly.
    fn observation_expression(&mut self) -> PResult<ObservationExpression> {
        self.enter()?;
        let (mut expr, direct) = match self.tok {
            Token::LBrack => {
                self.bump()?;
                let c = self.comparison_or()?;
                self.expect(Token::RBrack, "']' or AND/OR")?;
                (ObservationExpression::Observation(c), true)
            }
            Token::LParen => {
                self.bump()?;
                let e = self.observation_expressions()?;
                self.expect(Token::RParen, "')'")?;
                (e, false)
            }
            _ => return Err(self.unexpected("'[' or '('")),
        };
        let mut seen: Vec<QualifierKind> = Vec::new();
        loop {
            let at = self.at;
            let q = match self.tok {
                Token::Keyword(Keyword::Within) => self.within()?,
                Token::Keyword(Keyword::Repeats) => self.repeats()?,
                Token::Keyword(Keyword::Start) => self.start_stop()?,
                _ => break,
            };
            if direct {
                if seen.contains(&q.kind()) {
                    let name = match q.kind() {
                        QualifierKind::Within => "WITHIN",
                        QualifierKind::Repeats => "REPEATS",
                        QualifierKind::StartStop => "STARTSTOP",
                    };
                    return Err(self.error(
                        at,
                        format!("duplicate qualifier type on one observation: {name}"),
                    ));
                }
                seen.push(q.kind());
            }
            expr = ObservationExpression::Qualified(Box::new(expr), q);
        }
        self.depth -= 1;
        Ok(expr)
    }

    fn within(&mut self) -> PResult<Qualifier> {
        self.bump()?;
        let at = self.at;
        let n = match self.tok {
            Token::Int {
                value: Some(v),
                negative: false,
            } if v > 0 && v <= MAX_STIX_INT => Number::Int(v.unsigned_abs()),
            Token::Float {
                value,
                negative: false,
            } if value > 0.0 && value.is_finite() => Number::Float(value),
            Token::Int {
                negative: false, ..
            }
            | Token::Float {
                negative: false, ..
            } => {
                return Err(self.error(
                    at,
                    "WITHIN needs a positive number of seconds (at most 2^53 - 1)",
                ));
            }
            _ => return Err(self.unexpected("a positive number after WITHIN")),
        };
        self.bump()?;
        self.expect(Token::Keyword(Keyword::Seconds), "SECONDS")?;
        Ok(Qualifier::Within(n))
    }

    fn repeats(&mut self) -> PResult<Qualifier> {
        self.bump()?;
        let at = self.at;
        let n = match self.tok {
            Token::Int {
                value: Some(v),
                negative: false,
            } if v > 0 && v <= MAX_STIX_INT => v.unsigned_abs(),
            Token::Int {
                negative: false, ..
            } => {
                return Err(self.error(
                    at,
                    "REPEATS needs a positive integer count (at most 2^53 - 1)",
                ));
            }
            _ => return Err(self.unexpected("a positive integer after REPEATS")),
        };
        self.bump()?;
        self.expect(Token::Keyword(Keyword::Times), "TIMES")?;
        Ok(Qualifier::Repeats(n))
    }

    fn start_stop(&mut self) -> PResult<Qualifier> {
        self.bump()?;
        let Token::Timestamp(start) = self.tok else {
            return Err(self.unexpected("a timestamp literal t'…' after START"));
        };
        self.bump()?;
        self.expect(Token::Keyword(Keyword::Stop), "STOP")?;
        let Token::Timestamp(stop) = self.tok else {
            return Err(self.unexpected("a timestamp literal t'…' after STOP"));
        };
        self.bump()?;
        Ok(Qualifier::StartStop {
            start: start.to_owned(),
            stop: stop.to_owned(),
        })
    }

    // comparisonExpression: OR < AND, left-associative.
    fn comparison_or(&mut self) -> PResult<ComparisonExpression> {
        let mut left = self.comparison_and()?;
        while self.is_kw(Keyword::Or) {
            self.bump()?;
            let right = self.comparison_and()?;
            left = ComparisonExpression::Or(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn comparison_and(&mut self) -> PResult<ComparisonExpression> {
        let mut left = self.prop_test()?;
        while self.is_kw(Keyword::And) {
            self.bump()?;
            let right = self.prop_test()?;
            left = ComparisonExpression::And(Box::new(left), Box::new(right));
        }
        Ok(left)
    }

    fn prop_test(&mut self) -> PResult<ComparisonExpression> {
        match self.tok {
            Token::LParen => {
                self.enter()?;
                self.bump()?;
                let e = self.comparison_or()?;
                self.expect(Token::RParen, "')' or AND/OR")?;
                self.depth -= 1;
                Ok(e)
            }
            Token::Keyword(Keyword::Exists) => {
                self.bump()?;
                Ok(ComparisonExpression::Exists(self.object_path()?))
            }
            _ => {
                let path = self.object_path()?;
                let negated = if self.is_kw(Keyword::Not) {
                    self.bump()?;
                    true
                } else {
                    false
                };
                let op_at = self.at;
                let operator = match self.tok {
                    Token::Eq => ComparisonOperator::Equal,
                    Token::Neq => ComparisonOperator::NotEqual,
                    Token::Lt => ComparisonOperator::Less,
                    Token::Le => ComparisonOperator::LessOrEqual,
                    Token::Gt => ComparisonOperator::Greater,
                    Token::Ge => ComparisonOperator::GreaterOrEqual,
                    Token::Keyword(Keyword::In) => ComparisonOperator::In,
                    Token::Keyword(Keyword::Like) => ComparisonOperator::Like,
                    Token::Keyword(Keyword::Matches) => ComparisonOperator::Matches,
                    Token::Keyword(Keyword::IsSubset) => ComparisonOperator::IsSubset,
                    Token::Keyword(Keyword::IsSuperset) => ComparisonOperator::IsSuperset,
                    _ => return Err(self.unexpected("a comparison operator")),
                };
                self.bump()?;
                let value_at = self.at;
                let value = match operator {
                    ComparisonOperator::Equal | ComparisonOperator::NotEqual => {
                        self.primitive_literal(true)?
                    }
                    ComparisonOperator::Less
                    | ComparisonOperator::LessOrEqual
                    | ComparisonOperator::Greater
                    | ComparisonOperator::GreaterOrEqual => self.primitive_literal(false)?,
                    ComparisonOperator::In => self.set_literal()?,
                    _ => match self.bump()? {
                        Token::Str(s) => Constant::String(s),
                        other => {
                            return Err(self.error(
                                value_at,
                                format!(
                                    "expected a string literal after {}, found {}",
                                    operator.as_str(),
                                    other.describe()
                                ),
                            ));
                        }
                    },
                };
                check_value(&path, operator, &value).map_err(|msg| self.error(op_at, msg))?;
                Ok(ComparisonExpression::Comparison(Comparison {
                    path,
                    negated,
                    operator,
                    value,
                }))
            }
        }
    }

    fn object_path(&mut self) -> PResult<ObjectPath> {
        let object_type = match self.tok {
            Token::Ident { text, .. } => text.to_owned(),
            _ => return Err(self.unexpected("an object type")),
        };
        self.bump()?;
        self.expect(Token::Colon, "':' after the object type")?;
        let mut components = Vec::with_capacity(2);
        let first_at = self.at;
        match self.bump()? {
            Token::Ident {
                text,
                hyphen: false,
            } => components.push(PathComponent::Property(text.to_owned())),
            Token::Str(s) => components.push(PathComponent::Property(s)),
            other => {
                return Err(self.error(
                    first_at,
                    format!(
                        "expected a property name (quote names that contain '-'), found {}",
                        other.describe()
                    ),
                ));
            }
        }
        loop {
            match self.tok {
                Token::Dot => {
                    self.bump()?;
                    let at = self.at;
                    match self.bump()? {
                        Token::Ident {
                            text,
                            hyphen: false,
                        } => components.push(PathComponent::Property(text.to_owned())),
                        Token::Str(s) => components.push(PathComponent::Property(s)),
                        other => {
                            return Err(self.error(
                                at,
                                format!(
                                    "expected a property name after '.' (quote names that contain '-'), found {}",
                                    other.describe()
                                ),
                            ));
                        }
                    }
                }
                Token::LBrack => {
                    self.bump()?;
                    let at = self.at;
                    match self.bump()? {
                        Token::Star => components.push(PathComponent::AnyIndex),
                        Token::Int {
                            value: Some(v),
                            negative: false,
                        } if v <= MAX_STIX_INT => {
                            components.push(PathComponent::Index(v.unsigned_abs()))
                        }
                        Token::Int { .. } => {
                            return Err(self.error(
                                at,
                                "a list index must be a non-negative integer (at most 2^53 - 1)",
                            ));
                        }
                        other => {
                            return Err(self.error(
                                at,
                                format!("expected a list index or '*', found {}", other.describe()),
                            ));
                        }
                    }
                    self.expect(Token::RBrack, "']' after the list index")?;
                }
                _ => break,
            }
        }
        Ok(ObjectPath {
            object_type,
            components,
        })
    }

    fn primitive_literal(&mut self, allow_bool: bool) -> PResult<Constant> {
        let at = self.at;
        let tok = self.bump()?;
        self.constant_from(tok, at, allow_bool)
    }

    fn constant_from(&self, tok: Token<'a>, at: usize, allow_bool: bool) -> PResult<Constant> {
        Ok(match tok {
            Token::Str(s) => Constant::String(s),
            Token::Int { value, .. } => match value {
                Some(v) if (-MAX_STIX_INT..=MAX_STIX_INT).contains(&v) => Constant::Int(v),
                _ => {
                    return Err(
                        self.error(at, "integer out of the STIX range -(2^53 - 1) ..= 2^53 - 1")
                    );
                }
            },
            Token::Float { value, .. } => {
                if !value.is_finite() {
                    return Err(self.error(at, "float literal out of range"));
                }
                Constant::Float(value)
            }
            Token::Bool(b) if allow_bool => Constant::Bool(b),
            Token::Bool(_) => {
                return Err(self.error(at, "a boolean cannot be compared with <, <=, > or >="));
            }
            Token::Hex(b) => Constant::Hex(b),
            Token::Binary(b) => Constant::Binary(b),
            Token::Timestamp(t) => Constant::Timestamp(t.to_owned()),
            other => {
                return Err(self.error(
                    at,
                    format!("expected a literal value, found {}", other.describe()),
                ));
            }
        })
    }

    fn set_literal(&mut self) -> PResult<Constant> {
        self.expect(Token::LParen, "'(' to open the set after IN")?;
        let mut items = Vec::new();
        if self.tok == Token::RParen {
            self.bump()?;
            return Ok(Constant::Set(items));
        }
        loop {
            items.push(self.primitive_literal(true)?);
            match self.tok {
                Token::Comma => {
                    self.bump()?;
                }
                Token::RParen => {
                    self.bump()?;
                    return Ok(Constant::Set(items));
                }
                _ => return Err(self.unexpected("',' or ')' in the set")),
            }
        }
    }
}

// ---------------------------------------------------------------- hash checks

/// Hash algorithms whose values the reference validator checks, keyed by the
/// upper-case name without `-`.
fn hash_rule(name: &str) -> Option<fn(&str) -> bool> {
    fn hex_len(s: &str, n: usize) -> bool {
        s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit())
    }
    let key: String = name
        .chars()
        .filter(|c| *c != '-' && *c != '\'')
        .flat_map(char::to_uppercase)
        .collect();
    Some(match key.as_str() {
        "MD5" => |s| hex_len(s, 32),
        // The reference's MD6 expression accepts any value starting with 32 hex digits.
        "MD6" => |s| s.len() >= 32 && s.as_bytes()[..32].iter().all(u8::is_ascii_hexdigit),
        "RIPEMD160" | "SHA1" => |s| hex_len(s, 40),
        "SHA224" | "SHA3224" => |s| hex_len(s, 56),
        "SHA256" | "SHA3256" => |s| hex_len(s, 64),
        "SHA384" | "SHA3384" => |s| hex_len(s, 96),
        "SHA512" | "SHA3512" | "WHIRLPOOL" => |s| hex_len(s, 128),
        "SSDEEP" => |s| {
            (1..=128).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'+' | b':' | b'.'))
        },
        _ => return None,
    })
}

/// The text the reference validator checks for a literal: its source spelling
/// with every `'` removed.
fn reference_text(c: &Constant) -> String {
    let mut s = c.to_string();
    s.retain(|ch| ch != '\'');
    s
}

/// The checks of a comparison's value that depend on its path: hashes
/// ([`check_hash_value`]) and addresses ([`check_address_value`]).
pub(super) fn check_value(
    path: &ObjectPath,
    operator: ComparisonOperator,
    value: &Constant,
) -> Result<(), String> {
    check_hash_value(path, operator, value)?;
    check_address_value(path, operator, value)
}

/// An `ipv4-addr:value` or `ipv6-addr:value` compared for equality, membership or
/// subnet must be an address or a CIDR block of that family: the specification
/// defines the property so (STIX 2.1, 6.4 and 6.5), and a comparison with anything
/// else can never match. The reference validator does not check it (a deviation,
/// docs/stix-deviations-patterns.md). `LIKE` and `MATCHES` take patterns, not
/// addresses, and are not checked.
fn check_address_value(
    path: &ObjectPath,
    operator: ComparisonOperator,
    value: &Constant,
) -> Result<(), String> {
    let family = match path.object_type.as_str() {
        "ipv4-addr" => 4,
        "ipv6-addr" => 6,
        _ => return Ok(()),
    };
    if !matches!(path.components.as_slice(), [PathComponent::Property(p)] if p == "value") {
        return Ok(());
    }
    if takes_a_pattern(operator) {
        return Ok(());
    }
    for item in elements(value) {
        let Constant::String(text) = item else {
            continue;
        };
        if !is_address_or_block(text, family) {
            return Err(format!(
                "'{text}' is not an IPv{family} address or CIDR block"
            ));
        }
    }
    Ok(())
}

/// `LIKE` and `MATCHES` compare with a pattern, not with a value of the property.
fn takes_a_pattern(operator: ComparisonOperator) -> bool {
    matches!(
        operator,
        ComparisonOperator::Like | ComparisonOperator::Matches
    )
}

/// The values a comparison names: each element of a set, or the one constant.
fn elements(value: &Constant) -> &[Constant] {
    match value {
        Constant::Set(items) => items,
        single => std::slice::from_ref(single),
    }
}

/// Whether `text` is an address of the family, or one with a `/prefix` within its
/// length.
fn is_address_or_block(text: &str, family: u8) -> bool {
    let (address, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let bits: u8 = match family {
        4 if address.parse::<std::net::Ipv4Addr>().is_ok() => 32,
        6 if address.parse::<std::net::Ipv6Addr>().is_ok() => 128,
        _ => return false,
    };
    match prefix {
        None => true,
        Some(p) => {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u8>().is_ok_and(|n| n <= bits)
        }
    }
}

/// A comparison on `…hashes.<ALGO>` must use a value valid for the algorithm.
///
/// As in the reference validator, any path with a `hashes` step is checked when
/// its last step names a known algorithm. Two deviations follow the
/// specification instead: each element of an `IN` set is checked on its own
/// (the reference rejects every set), and `LIKE` / `MATCHES` values are patterns,
/// not hashes, so they are not checked.
pub(super) fn check_hash_value(
    path: &ObjectPath,
    operator: ComparisonOperator,
    value: &Constant,
) -> Result<(), String> {
    if !path
        .components
        .iter()
        .any(|c| matches!(c, PathComponent::Property(p) if p == "hashes"))
    {
        return Ok(());
    }
    let name = match path.components.last() {
        Some(PathComponent::Property(p)) => p,
        Some(PathComponent::AnyIndex) | None => return Ok(()),
        Some(PathComponent::Index(_)) => {
            return Err("a hashes dictionary cannot be indexed like a list".into());
        }
    };
    let Some(rule) = hash_rule(name) else {
        return Ok(());
    };
    if takes_a_pattern(operator) {
        return Ok(());
    }
    if matches!(value, Constant::Set(items) if items.is_empty()) {
        return Err(format!("an empty set is not a valid {name} hash"));
    }
    for item in elements(value) {
        let text = reference_text(item);
        if !rule(&text) {
            return Err(format!("'{text}' is not a valid {name} hash"));
        }
    }
    Ok(())
}
