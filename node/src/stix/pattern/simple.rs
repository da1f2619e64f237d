//! The shape most indicators have, read in one pass.
//!
//! Nearly every pattern a feed carries is one equality test in one observation:
//! `[ipv4-addr:value = '198.51.100.7']`, `[file:hashes.'SHA-256' = '…']`. The general
//! parser builds a token for each piece and goes through every precedence level to
//! reach it; for such short text that machinery is most of the cost, and the node
//! parses every pattern it publishes or receives. [`parse`] reads exactly that shape
//! (ASCII spaces only around the brackets and the `=`, no escapes) straight into the
//! tree and answers `None` for anything else, which then goes to the general parser.
//! What it accepts, it returns exactly as the general parser would (the tests compare
//! both on every one-byte edit of typical patterns); it never reports errors.

use super::lexer::{Keyword, is_ident_continue, is_ident_start};
use super::parser::check_value;
use super::{
    Comparison, ComparisonExpression, ComparisonOperator, Constant, ObjectPath,
    ObservationExpression, PathComponent, Pattern,
};

/// `[type:path = 'value']`, or `None` when the text is not of exactly that shape.
pub(super) fn parse(input: &str) -> Option<Pattern> {
    let mut r = Reader { s: input, i: 0 };
    r.byte(b'[')?;
    r.spaces();
    let object_type = r.identifier()?.to_owned();
    r.byte(b':')?;
    let mut components = Vec::with_capacity(2);
    components.push(r.property()?);
    while r.peek() == Some(b'.') {
        r.i += 1;
        components.push(r.property()?);
    }
    r.spaces();
    r.byte(b'=')?;
    if r.peek() == Some(b'=') {
        r.i += 1;
    }
    r.spaces();
    let value = r.quoted()?.to_owned();
    r.spaces();
    r.byte(b']')?;
    r.spaces();
    if r.i != input.len() {
        return None;
    }
    let path = ObjectPath {
        object_type,
        components,
    };
    let value = Constant::String(value);
    // A hash value of the wrong form is an error: the general parser reports it.
    check_value(&path, ComparisonOperator::Equal, &value).ok()?;
    Some(Pattern {
        expression: ObservationExpression::Observation(ComparisonExpression::Comparison(
            Comparison {
                path,
                negated: false,
                operator: ComparisonOperator::Equal,
                value,
            },
        )),
    })
}

struct Reader<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.i).copied()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.peek()? == want).then(|| self.i += 1)
    }

    fn spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    /// An identifier as the lexer reads one (`[A-Za-z_][A-Za-z0-9_-]*`, as long as it
    /// goes) that the lexer does not turn into a keyword or a boolean.
    fn identifier(&mut self) -> Option<&'a str> {
        let start = self.i;
        if !self.peek().is_some_and(is_ident_start) {
            return None;
        }
        self.i += 1;
        while self.peek().is_some_and(is_ident_continue) {
            self.i += 1;
        }
        let text = &self.s[start..self.i];
        let plain = Keyword::from_identifier(text).is_none() && text != "true" && text != "false";
        plain.then_some(text)
    }

    /// A property step: a bare name without `-`, or a quoted one.
    fn property(&mut self) -> Option<PathComponent> {
        let name = if self.peek() == Some(b'\'') {
            self.quoted()?
        } else {
            let name = self.identifier()?;
            if name.contains('-') {
                return None;
            }
            name
        };
        Some(PathComponent::Property(name.to_owned()))
    }

    /// `'…'` without escapes: its text. Text with a `\` is left to the general parser.
    fn quoted(&mut self) -> Option<&'a str> {
        self.byte(b'\'')?;
        let start = self.i;
        let rest = &self.s.as_bytes()[start..];
        let len = rest.iter().position(|&c| c == b'\'' || c == b'\\')?;
        if rest[len] == b'\\' {
            return None;
        }
        self.i = start + len + 1;
        Some(&self.s[start..start + len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Typical patterns of each kind a feed carries.
    const TYPICAL: &[&str] = &[
        "[ipv4-addr:value = '198.51.100.7']",
        "[ipv6-addr:value = '2001:db8::1']",
        "[domain-name:value = 'zephyr-onyx113.net']",
        "[url:value = 'http://evil.example/a?b=c']",
        "[file:hashes.'SHA-256' = '5d0d46349c7fbb4b9426dea3165b3a6fd7163dbad189fe76bcd5d66b98938365']",
        "[file:hashes.MD5 = '79054025255fb1a26e4bc422aef54eb4']",
        "[email-addr:value == 'a@example.com']",
        "[x-custom_type:a_b.c = '']",
        "[ network-traffic:dst_ref.value='203.0.113.1' ]  ",
    ];

    /// What the fast path accepts, the general parser returns identically; what the
    /// general parser refuses, the fast path never accepts.
    fn agrees(input: &str) -> Result<(), TestCaseError> {
        if let Some(fast) = parse(input) {
            let general = super::super::parser::parse_general(input);
            prop_assert_eq!(Ok(fast), general, "input {:?}", input);
        }
        Ok(())
    }

    #[test]
    fn typical_patterns_take_the_fast_path_and_agree() {
        for p in TYPICAL {
            assert!(parse(p).is_some(), "{p}");
            agrees(p).unwrap();
        }
    }

    #[test]
    fn other_shapes_are_left_to_the_general_parser() {
        for p in [
            "[ipv4-addr:value = '198.51.100.7'] WITHIN 5 SECONDS",
            "[ipv4-addr:value = '1.2.3.4' OR ipv4-addr:value = '1.2.3.5']",
            "[ipv4-addr:value != '1.2.3.4']",
            "[ipv4-addr:value NOT = '1.2.3.4']",
            "[file:size = 5]",
            "[file:name = 'a\\'b']",
            "[file:hashes.'SHA-256' = 'not-hex']",
            "[file:parent_directory_ref.path[0] = 'x']",
            "[AND:value = 'x']",
            "[true:value = 'x']",
            "[file:na-me = 'x']",
            "[file:\tname = 'x']",
            "([file:name = 'x'])",
            "[file:name = 'x']]",
            "[file:name = 'x",
        ] {
            assert!(parse(p).is_none(), "{p}");
        }
    }

    #[test]
    fn every_one_byte_edit_of_a_typical_pattern_agrees() {
        // Characters that matter to the grammar, and some that do not.
        let replacements = [
            "", " ", "'", "\\", "[", "]", "(", ")", ".", ":", "=", "-", "_", "A", "a", "0", "\t",
            "\u{a0}", "é", "/*", "*/", "//", "!", "<", ">", "*", ",", "t", "h", "b",
        ];
        let mut checked = 0;
        for p in TYPICAL {
            let chars: Vec<(usize, char)> = p.char_indices().collect();
            for &(at, c) in &chars {
                let after = at + c.len_utf8();
                for r in replacements {
                    let edited = format!("{}{}{}", &p[..at], r, &p[after..]);
                    agrees(&edited).unwrap();
                    let inserted = format!("{}{}{}", &p[..at], r, &p[at..]);
                    agrees(&inserted).unwrap();
                    checked += 2;
                }
            }
        }
        assert!(checked > 5_000, "{checked}");
    }

    proptest! {
        #[test]
        fn generated_simple_patterns_agree(
            ty in "[a-z_][a-z0-9_-]{0,12}",
            props in proptest::collection::vec("([a-z_][a-z0-9_]{0,8}|'[^'\\\\]{0,8}')", 1..4),
            value in "[^'\\\\]{0,20}",
            lead in " {0,2}",
            eq in "(=|==| = | == )",
            tail in " {0,2}",
        ) {
            let input = format!("[{lead}{ty}:{}{eq}'{value}'{tail}]{tail}", props.join("."));
            agrees(&input)?;
        }

        #[test]
        fn arbitrary_text_agrees(input in "\\[[a-z:.' =\\]A-Z0-9\\\\_-]{0,40}") {
            agrees(&input)?;
        }
    }
}
