//! The STIX 2.1 patterning language (STIX 2.1 specification, section 9).
//!
//! Every indicator with `pattern_type: stix` carries a pattern; a node parses it on
//! ingest to reject malformed indicators and to extract the observables it names
//! (see [`crate::stix::observable`]). The parser is a hand-written lexer and
//! recursive-descent parser: it allocates only for the tree it returns and compiles
//! no regular expressions, so it keeps up with bulk feeds. The usual one-comparison
//! shape is read by a one-pass reader (`simple.rs`) in front of it.
//!
//! Accepted language: the OASIS grammar `STIXPattern.g4` for STIX 2.1 plus the
//! semantic checks of the OASIS reference validator (`stix2-patterns`): duplicate
//! qualifiers on one observation, and hash values that must match their algorithm.
//! Where the reference is looser than the specification we follow the
//! specification; `docs/stix-deviations-patterns.md` lists every such case.

mod lexer;
mod parser;
mod simple;

#[cfg(test)]
mod tests;

use std::fmt;

/// Parses and validates a STIX 2.1 pattern.
///
/// Accepts exactly what the STIX 2.1 grammar and the OASIS reference validator
/// accept, except where the reference is looser than the specification (see
/// `docs/stix-deviations-patterns.md`). Never panics, whatever the input.
///
/// The usual one-comparison shape is read by [`simple`] in one pass; everything
/// else, and every error, comes from the general parser.
pub fn parse(input: &str) -> Result<Pattern, PatternError> {
    match simple::parse(input) {
        Some(pattern) => Ok(pattern),
        None => parser::parse_general(input),
    }
}

/// Why a pattern was rejected, and where.
///
/// `position` is a 0-based offset in characters (not bytes) into the pattern, so a
/// client can point at the offending character whatever its encoding.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("pattern error at character {position}: {message}")]
pub struct PatternError {
    /// 0-based character offset of the offending token.
    pub position: usize,
    /// What is wrong there.
    pub message: String,
}

impl PatternError {
    /// Builds an error from a byte offset into `src`.
    pub(crate) fn at_byte(src: &str, byte: usize, message: impl Into<String>) -> Self {
        let byte = byte.min(src.len());
        let position = src.char_indices().take_while(|(i, _)| *i < byte).count();
        PatternError {
            position,
            message: message.into(),
        }
    }
}

/// A parsed pattern: one observation expression, possibly compound.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    /// The top-level observation expression.
    pub expression: ObservationExpression,
}

/// Something that must be observed: one `[ … ]` observation, observations combined
/// with `AND` / `OR` / `FOLLOWEDBY`, or an observation expression with a qualifier.
///
/// Parentheses are not kept: the tree's shape records the grouping, and `Display`
/// puts parentheses back where precedence (AND binds tighter than OR, which binds
/// tighter than FOLLOWEDBY; all left-associative) or qualifier rules need them.
#[derive(Debug, Clone, PartialEq)]
pub enum ObservationExpression {
    /// `[ comparison-expression ]`: one observed object matching the comparisons.
    Observation(ComparisonExpression),
    /// `a AND b`: both observed.
    And(Box<ObservationExpression>, Box<ObservationExpression>),
    /// `a OR b`: either observed.
    Or(Box<ObservationExpression>, Box<ObservationExpression>),
    /// `a FOLLOWEDBY b`: `b` observed after `a`.
    FollowedBy(Box<ObservationExpression>, Box<ObservationExpression>),
    /// `expression qualifier`.
    Qualified(Box<ObservationExpression>, Qualifier),
}

/// A qualifier restricting when or how often an observation expression matches.
#[derive(Debug, Clone, PartialEq)]
pub enum Qualifier {
    /// `WITHIN n SECONDS`: all matching observations within this many seconds.
    Within(Number),
    /// `REPEATS n TIMES`: the expression matches `n` times.
    Repeats(u64),
    /// `START t'…' STOP t'…'`: observations between the two instants (the text of
    /// each timestamp is kept as written; it has been validated).
    StartStop {
        /// Text inside `t'…'` after `START`.
        start: String,
        /// Text inside `t'…'` after `STOP`.
        stop: String,
    },
}

impl Qualifier {
    /// Which kind of qualifier this is; one observation may carry each kind once.
    pub fn kind(&self) -> QualifierKind {
        match self {
            Qualifier::Within(_) => QualifierKind::Within,
            Qualifier::Repeats(_) => QualifierKind::Repeats,
            Qualifier::StartStop { .. } => QualifierKind::StartStop,
        }
    }
}

/// The kinds of qualifier, for the "each kind at most once on a `[ … ]`" rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QualifierKind {
    /// `WITHIN`.
    Within,
    /// `REPEATS`.
    Repeats,
    /// `START … STOP`.
    StartStop,
}

/// A positive number of seconds for `WITHIN`, integer or float as written.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An integer number of seconds.
    Int(u64),
    /// A fractional number of seconds.
    Float(f64),
}

/// Comparisons inside one `[ … ]`, combined with `AND` (binds tighter) and `OR`.
#[derive(Debug, Clone, PartialEq)]
pub enum ComparisonExpression {
    /// Both hold (for the same object).
    And(Box<ComparisonExpression>, Box<ComparisonExpression>),
    /// Either holds.
    Or(Box<ComparisonExpression>, Box<ComparisonExpression>),
    /// One property test.
    Comparison(Comparison),
    /// `EXISTS path`: the property is present.
    Exists(ObjectPath),
}

/// `path [NOT] operator value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// The property compared.
    pub path: ObjectPath,
    /// `NOT` before the operator: the result is inverted.
    pub negated: bool,
    /// The operator.
    pub operator: ComparisonOperator,
    /// The right-hand side; its kind fits the operator (a set for `IN`, a string
    /// for `LIKE`, `MATCHES`, `ISSUBSET`, `ISSUPERSET`, no boolean for ordering).
    pub value: Constant,
}

/// Comparison operators. `==` parses as [`Equal`](Self::Equal) and `<>` as
/// [`NotEqual`](Self::NotEqual).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ComparisonOperator {
    /// `=`
    Equal,
    /// `!=`
    NotEqual,
    /// `<`
    Less,
    /// `<=`
    LessOrEqual,
    /// `>`
    Greater,
    /// `>=`
    GreaterOrEqual,
    /// `IN ( … )`
    In,
    /// `LIKE` (SQL-style `%` and `_` wildcards).
    Like,
    /// `MATCHES` (PCRE regular expression).
    Matches,
    /// `ISSUBSET` (the IP address or network is inside the given CIDR).
    IsSubset,
    /// `ISSUPERSET` (the network contains the given address or CIDR).
    IsSuperset,
}

impl ComparisonOperator {
    /// The canonical spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ComparisonOperator::Equal => "=",
            ComparisonOperator::NotEqual => "!=",
            ComparisonOperator::Less => "<",
            ComparisonOperator::LessOrEqual => "<=",
            ComparisonOperator::Greater => ">",
            ComparisonOperator::GreaterOrEqual => ">=",
            ComparisonOperator::In => "IN",
            ComparisonOperator::Like => "LIKE",
            ComparisonOperator::Matches => "MATCHES",
            ComparisonOperator::IsSubset => "ISSUBSET",
            ComparisonOperator::IsSuperset => "ISSUPERSET",
        }
    }
}

impl Pattern {
    /// Every object path the pattern mentions (in comparisons and `EXISTS`), in
    /// order of appearance.
    pub fn object_paths(&self) -> Vec<&ObjectPath> {
        fn obs<'a>(e: &'a ObservationExpression, out: &mut Vec<&'a ObjectPath>) {
            match e {
                ObservationExpression::Observation(c) => cmp(c, out),
                ObservationExpression::And(l, r)
                | ObservationExpression::Or(l, r)
                | ObservationExpression::FollowedBy(l, r) => {
                    obs(l, out);
                    obs(r, out);
                }
                ObservationExpression::Qualified(inner, _) => obs(inner, out),
            }
        }
        fn cmp<'a>(e: &'a ComparisonExpression, out: &mut Vec<&'a ObjectPath>) {
            match e {
                ComparisonExpression::And(l, r) | ComparisonExpression::Or(l, r) => {
                    cmp(l, out);
                    cmp(r, out);
                }
                ComparisonExpression::Exists(p) => out.push(p),
                ComparisonExpression::Comparison(c) => out.push(&c.path),
            }
        }
        let mut out = Vec::new();
        obs(&self.expression, &mut out);
        out
    }
}

/// `object-type:property.sub[0].x` — which property of which kind of object.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ObjectPath {
    /// The STIX Cyber-observable type (`file`, `ipv4-addr`, `x-custom`, …).
    pub object_type: String,
    /// The steps from the object to the property; never empty, and the first step
    /// is always a [`PathComponent::Property`].
    pub components: Vec<PathComponent>,
}

impl ObjectPath {
    /// The property names along the path, ignoring list indexes: for
    /// `file:hashes.'SHA-256'` that is `["hashes", "SHA-256"]`.
    pub fn property_names(&self) -> impl Iterator<Item = &str> {
        self.components.iter().filter_map(|c| match c {
            PathComponent::Property(p) => Some(p.as_str()),
            _ => None,
        })
    }
}

/// One step of an object path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathComponent {
    /// `.name` or `.'quoted-name'` (also the first property after the `:`).
    Property(String),
    /// `[n]`: one list element.
    Index(u64),
    /// `[*]`: any list element.
    AnyIndex,
}

/// A literal value.
#[derive(Debug, Clone, PartialEq)]
pub enum Constant {
    /// `'…'`, unescaped.
    String(String),
    /// An integer; STIX integers are limited to ±(2^53 − 1).
    Int(i64),
    /// A float.
    Float(f64),
    /// `true` / `false`.
    Bool(bool),
    /// `b'…'`, decoded.
    Binary(Vec<u8>),
    /// `h'…'`, decoded.
    Hex(Vec<u8>),
    /// `t'…'`: the validated timestamp text.
    Timestamp(String),
    /// `( … )` for `IN`: elements are never sets.
    Set(Vec<Constant>),
}

/// Largest magnitude of a STIX integer (STIX 2.1 section 2.8: 54-bit signed).
pub const MAX_STIX_INT: i64 = (1 << 53) - 1;

// ---------------------------------------------------------------- Display

/// Is this text a bare path step (identifier that lexes as an identifier)?
fn is_bare_identifier(s: &str) -> bool {
    let b = s.as_bytes();
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {}
        _ => return false,
    }
    b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'_')
        && lexer::Keyword::from_identifier(s).is_none()
        && s != "true"
        && s != "false"
}

/// Writes `'…'` with `\` and `'` escaped.
fn write_quoted(f: &mut fmt::Formatter<'_>, s: &str) -> fmt::Result {
    f.write_str("'")?;
    for c in s.chars() {
        match c {
            '\\' => f.write_str("\\\\")?,
            '\'' => f.write_str("\\'")?,
            _ => fmt::Write::write_char(f, c)?,
        }
    }
    f.write_str("'")
}

fn write_float(f: &mut fmt::Formatter<'_>, v: f64) -> fmt::Result {
    let s = v.to_string();
    if s.contains('.') {
        f.write_str(&s)
    } else {
        write!(f, "{s}.0")
    }
}

impl fmt::Display for Pattern {
    /// Canonical text: single spaces, `=`/`!=` spellings, parentheses only where
    /// needed, lower-case hex, padded base64. It parses back to an equal tree.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.expression.fmt(f)
    }
}

impl ObservationExpression {
    fn precedence(&self) -> u8 {
        match self {
            ObservationExpression::FollowedBy(..) => 1,
            ObservationExpression::Or(..) => 2,
            ObservationExpression::And(..) => 3,
            ObservationExpression::Observation(_) | ObservationExpression::Qualified(..) => 4,
        }
    }

    /// The qualifier kinds applied directly to a `[ … ]` at the bottom of a chain of
    /// qualifiers, or `None` when the chain's base is not a `[ … ]`.
    fn direct_qualifier_kinds(&self, out: &mut Vec<QualifierKind>) -> bool {
        match self {
            ObservationExpression::Observation(_) => true,
            ObservationExpression::Qualified(inner, q) => {
                out.push(q.kind());
                inner.direct_qualifier_kinds(out)
            }
            _ => false,
        }
    }
}

fn write_obs_operand(
    f: &mut fmt::Formatter<'_>,
    e: &ObservationExpression,
    parens: bool,
) -> fmt::Result {
    if parens {
        write!(f, "({e})")
    } else {
        write!(f, "{e}")
    }
}

impl fmt::Display for ObservationExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, r, op) = match self {
            ObservationExpression::Observation(c) => return write!(f, "[{c}]"),
            ObservationExpression::Qualified(inner, q) => {
                let mut kinds = Vec::new();
                let parens = inner.precedence() < 4
                    || (inner.direct_qualifier_kinds(&mut kinds) && kinds.contains(&q.kind()));
                write_obs_operand(f, inner, parens)?;
                return write!(f, " {q}");
            }
            ObservationExpression::And(l, r) => (l, r, "AND"),
            ObservationExpression::Or(l, r) => (l, r, "OR"),
            ObservationExpression::FollowedBy(l, r) => (l, r, "FOLLOWEDBY"),
        };
        let p = self.precedence();
        write_obs_operand(f, l, l.precedence() < p)?;
        write!(f, " {op} ")?;
        write_obs_operand(f, r, r.precedence() <= p)
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Within(Number::Int(n)) => write!(f, "WITHIN {n} SECONDS"),
            Qualifier::Within(Number::Float(x)) => {
                f.write_str("WITHIN ")?;
                write_float(f, *x)?;
                f.write_str(" SECONDS")
            }
            Qualifier::Repeats(n) => write!(f, "REPEATS {n} TIMES"),
            Qualifier::StartStop { start, stop } => write!(f, "START t'{start}' STOP t'{stop}'"),
        }
    }
}

impl ComparisonExpression {
    fn precedence(&self) -> u8 {
        match self {
            ComparisonExpression::Or(..) => 1,
            ComparisonExpression::And(..) => 2,
            _ => 3,
        }
    }
}

impl fmt::Display for ComparisonExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (l, r, op) = match self {
            ComparisonExpression::Comparison(c) => return c.fmt(f),
            ComparisonExpression::Exists(p) => return write!(f, "EXISTS {p}"),
            ComparisonExpression::And(l, r) => (l, r, "AND"),
            ComparisonExpression::Or(l, r) => (l, r, "OR"),
        };
        let p = self.precedence();
        if l.precedence() < p {
            write!(f, "({l})")?;
        } else {
            write!(f, "{l}")?;
        }
        write!(f, " {op} ")?;
        if r.precedence() <= p {
            write!(f, "({r})")
        } else {
            write!(f, "{r}")
        }
    }
}

impl fmt::Display for Comparison {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ", self.path)?;
        if self.negated {
            f.write_str("NOT ")?;
        }
        write!(f, "{} {}", self.operator.as_str(), self.value)
    }
}

impl fmt::Display for ObjectPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.object_type)?;
        for (i, c) in self.components.iter().enumerate() {
            match c {
                PathComponent::Property(p) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_identifier(p) {
                        f.write_str(p)?;
                    } else {
                        write_quoted(f, p)?;
                    }
                }
                PathComponent::Index(n) => write!(f, "[{n}]")?,
                PathComponent::AnyIndex => f.write_str("[*]")?,
            }
        }
        Ok(())
    }
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constant::String(s) => write_quoted(f, s),
            Constant::Int(n) => write!(f, "{n}"),
            Constant::Float(x) => write_float(f, *x),
            Constant::Bool(b) => write!(f, "{b}"),
            Constant::Binary(bytes) => write!(f, "b'{}'", lexer::encode_base64(bytes)),
            Constant::Hex(bytes) => {
                f.write_str("h'")?;
                for b in bytes {
                    write!(f, "{b:02x}")?;
                }
                f.write_str("'")
            }
            Constant::Timestamp(t) => write!(f, "t'{t}'"),
            Constant::Set(items) => {
                f.write_str("(")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    item.fmt(f)?;
                }
                f.write_str(")")
            }
        }
    }
}
