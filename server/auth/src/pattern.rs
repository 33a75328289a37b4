//! IAM's string patterns: `*` (any run of characters) and `?` (any one character), policy
//! variables (`${aws:username}`, `${aws:username, 'default'}`) and their escapes (`${*}`,
//! `${?}`, `${$}`), and ARN matching component by component.

use super::context::Context;

/// A parsed pattern: literal text, wildcards and variables to fill from the request.
#[derive(Debug, Clone, PartialEq)]
pub struct Pattern {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// `*`: any run of characters, none included.
    Star,
    /// `?`: exactly one character.
    One,
    /// `${key}` or `${key, 'default'}` (the key in lower case).
    Var {
        key: String,
        default: Option<String>,
    },
}

/// One token after variables are filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Token {
    Char(char),
    Star,
    One,
}

impl Pattern {
    /// Parses `text`. `wildcards`: whether `*` and `?` are wildcards (the `...Like` operators,
    /// `Action`, `Resource`) or plain characters (`StringEquals`). `variables`: whether `${...}`
    /// is a policy variable (policy version 2012-10-17) or plain text.
    pub fn parse(text: &str, wildcards: bool, variables: bool) -> Result<Self, String> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if variables && rest.starts_with("${") {
                let end = rest
                    .find('}')
                    .ok_or_else(|| format!("{text:?}: a policy variable `${{` is not closed"))?;
                let inner = rest[2..end].trim();
                rest = &rest[end + 1..];
                match inner {
                    "*" => literal.push('*'),
                    "?" => literal.push('?'),
                    "$" => literal.push('$'),
                    _ => {
                        let (key, default) = match inner.split_once(',') {
                            Some((key, default)) => {
                                let default = default.trim();
                                let default = default
                                    .strip_prefix('\'')
                                    .and_then(|d| d.strip_suffix('\''))
                                    .ok_or_else(|| {
                                        format!(
                                            "{text:?}: a policy variable's default must be quoted \
                                             as '...'"
                                        )
                                    })?;
                                (key.trim(), Some(default.to_string()))
                            }
                            None => (inner, None),
                        };
                        if key.is_empty() || key.contains(char::is_whitespace) {
                            return Err(format!("{text:?}: {key:?} is not a condition key"));
                        }
                        if !literal.is_empty() {
                            parts.push(Part::Text(std::mem::take(&mut literal)));
                        }
                        parts.push(Part::Var {
                            key: key.to_ascii_lowercase(),
                            default,
                        });
                    }
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            match c {
                '*' | '?' if wildcards => {
                    if !literal.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut literal)));
                    }
                    parts.push(if c == '*' { Part::Star } else { Part::One });
                }
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            parts.push(Part::Text(literal));
        }
        Ok(Self { parts })
    }

    /// Whether the pattern has policy variables (it needs the request's condition keys).
    pub fn has_variables(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Var { .. }))
    }

    /// Whether the pattern is exactly `*`.
    pub fn is_star(&self) -> bool {
        self.parts == [Part::Star]
    }

    /// The pattern with its variables filled in from `context`; `None` when a variable's key is
    /// missing (or has several values) and has no default: such a pattern matches nothing.
    fn tokens(&self, context: &Context) -> Option<Vec<Token>> {
        let mut out = Vec::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend(t.chars().map(Token::Char)),
                Part::Star => out.push(Token::Star),
                Part::One => out.push(Token::One),
                Part::Var { key, default } => {
                    let value = match context.single(key) {
                        Some(v) => v,
                        None => default.as_deref()?,
                    };
                    out.extend(value.chars().map(Token::Char));
                }
            }
        }
        Some(out)
    }

    /// Whether the whole of `text` matches.
    pub fn matches(&self, text: &str, ignore_case: bool, context: &Context) -> bool {
        let Some(tokens) = self.tokens(context) else {
            return false;
        };
        let text: Vec<char> = text.chars().collect();
        glob(&tokens, &text, ignore_case)
    }

    /// ARN matching (`Resource`, `ArnLike`, `ArnEquals`): both split into their six
    /// colon-separated components (the last keeps any further colons), each matched on its
    /// own, so a wildcard never spans a colon between components. A pattern of `*` matches any
    /// ARN; text that is not an ARN matches nothing else.
    pub fn matches_arn(&self, arn: &str, context: &Context) -> bool {
        if self.is_star() {
            return true;
        }
        let Some(tokens) = self.tokens(context) else {
            return false;
        };
        let pattern = split_components(&tokens, |t| *t == Token::Char(':'));
        let text: Vec<char> = arn.chars().collect();
        let text = split_components(&text, |c| *c == ':');
        match (pattern, text) {
            (Some(p), Some(t)) => p.iter().zip(&t).all(|(p, t)| glob(p, t, false)),
            _ => false,
        }
    }
}

/// Splits into exactly 6 components at the first five separators; `None` with fewer.
fn split_components<T>(items: &[T], is_separator: impl Fn(&T) -> bool) -> Option<Vec<&[T]>> {
    let mut out = Vec::with_capacity(6);
    let mut start = 0;
    for (i, item) in items.iter().enumerate() {
        if out.len() == 5 {
            break;
        }
        if is_separator(item) {
            out.push(&items[start..i]);
            start = i + 1;
        }
    }
    if out.len() < 5 {
        return None;
    }
    out.push(&items[start..]);
    Some(out)
}

/// Wildcard matching with one backtrack point (the last `*`): linear for these patterns.
fn glob(pattern: &[Token], text: &[char], ignore_case: bool) -> bool {
    let same = |a: char, b: char| {
        if ignore_case {
            a == b || a.to_lowercase().eq(b.to_lowercase())
        } else {
            a == b
        }
    };
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(Token::One) => {
                p += 1;
                t += 1;
            }
            Some(Token::Char(c)) if same(*c, text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` take one more character, and go on after it.
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|t| *t == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, text: &str) -> bool {
        Pattern::parse(pattern, true, true)
            .unwrap()
            .matches(text, false, &Context::default())
    }

    #[test]
    fn wildcards() {
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("a*c", "abbbc"));
        assert!(m("a*c", "ac"));
        assert!(!m("a*c", "acb"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("*b*b*", "abxbx"));
        assert!(!m("abc", "abcd"));
        assert!(m("é?", "éé"));
    }

    #[test]
    fn variables_and_escapes() {
        let mut ctx = Context::default();
        ctx.set("aws:username", "alice");
        let p = Pattern::parse("home/${aws:username}/*", true, true).unwrap();
        assert!(p.matches("home/alice/x", false, &ctx));
        assert!(!p.matches("home/bob/x", false, &ctx));
        assert!(!p.matches("home/alice/x", false, &Context::default()));
        let p = Pattern::parse("home/${aws:userid, 'nobody'}", true, true).unwrap();
        assert!(p.matches("home/nobody", false, &ctx));
        // `${*}` is a literal star.
        let p = Pattern::parse("a${*}", true, true).unwrap();
        assert!(p.matches("a*", false, &ctx));
        assert!(!p.matches("ab", false, &ctx));
        // Version 2008-10-17: no variables.
        let p = Pattern::parse("${aws:username}", true, false).unwrap();
        assert!(p.matches("${aws:username}", false, &ctx));
        assert!(Pattern::parse("${aws:username", true, true).is_err());
    }

    #[test]
    fn arns_match_component_by_component() {
        let ctx = Context::default();
        let p = Pattern::parse("arn:aws:sagemaker:*:*:feature-group/cust*", true, true).unwrap();
        assert!(p.matches_arn(
            "arn:aws:sagemaker:us-east-1:123456789012:feature-group/customers",
            &ctx
        ));
        assert!(!p.matches_arn(
            "arn:aws:sagemaker:us-east-1:123456789012:feature-group/orders",
            &ctx
        ));
        // A wildcard does not span the colons between components.
        let p = Pattern::parse("arn:aws:sagemaker:*:feature-group/x", true, true).unwrap();
        assert!(!p.matches_arn("arn:aws:sagemaker:r:1:feature-group/x", &ctx));
        assert!(!p.matches_arn("not-an-arn", &ctx));
    }
}
