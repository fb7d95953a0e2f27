//! The COCO caption protocol's tokenization: pycocoevalcap's `PTBTokenizer`, i.e. the
//! Stanford PTBTokenizer of CoreNLP 3.4.1 run as
//! `java edu.stanford.nlp.process.PTBTokenizer -preserveLines -lowerCase`, then
//! pycocoevalcap's punctuation filter (metrics.md §1a).
//!
//! This module owns that tokenizer, reimplemented in Rust: no Java, no Python, no
//! I/O. It must not know about scorers; they take its token lists.
//!
//! # How it works
//! Stanford's tokenizer is a JFlex lexer: at each position every rule is tried, the
//! longest match wins (a rule's trailing context `r1/r2` counts for the length), ties
//! go to the earlier rule, and the rule's action makes the token (normalizing quotes,
//! brackets, dashes, currency…) and may push characters back. `Re` is a small regular
//! expression engine that returns every end position of a match (sets of positions, so
//! "longest" is exact), and `build_rules` lists the lexer's rules in its order,
//! transcribed from `PTBLexer.flex` (no 3.4.1 source was at hand: from the 2012 and
//! 2017 files) and corrected against the 3.4.1 jar wherever they differed on
//! generated captions. A fast path takes plain ASCII words followed by a space; the
//! rest goes through the rules. Tokens are then lowercased (Java's
//! `String.toLowerCase`), the line's end is `rstrip`ped and the tokens in
//! pycocoevalcap's `PUNCTUATIONS` dropped.
//!
//! # Parity and its limits
//! - Checked identical on `tests/fixtures/metrics/ptb_goldens.json` (3,013 captions)
//!   and on 90,000 more generated the same way (`make_goldens.py --ptb-only`).
//! - pycocoevalcap writes all captions of one call to one file, and the jar's
//!   lookahead crosses lines ("I." ending a caption is "i" when the next caption starts
//!   with "A ", "The "…). [`tokenize_all`] reproduces a call; [`tokenize`] is a call
//!   with one caption.
//! - The jar reads UTF-16: a character above U+FFFF is two surrogates, which positive
//!   classes never match (so an emoji alone is deleted) and negated ones do (so it can
//!   sit inside an e-mail or URL token); this module models exactly that.
//! - Java's letter/digit classes are approximated with Rust's `is_alphabetic` and a
//!   decimal-digit test; they agree on Latin, Greek and Cyrillic text, not necessarily
//!   on every script.
//! - Characters the jar treats as line breaks (`\r`, U+000B, U+000C, U+2028, U+2029)
//!   shift pycocoevalcap's line alignment for the rest of its call; here they are
//!   whitespace. Such captions are not in the goldens.
//! - Tokens can contain U+00A0 (fractions like "3 1/2", phone numbers, SGML tags) or
//!   other non-ASCII spaces (inside e-mail and URL tokens), as the jar writes them;
//!   pycocoevalcap splits on " " only, so they stay one token (its BLEU and CIDEr later
//!   split them again with `str.split()`, its ROUGE-L does not).

use std::sync::{Arc, OnceLock};

/// Tokens pycocoevalcap removes after tokenizing (`ptbtokenizer.py` line 21). The jar
/// lowercases first, so `-LRB-` and friends never match and survive as `-lrb-`.
const PUNCTUATIONS: [&str; 17] = [
    "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
    "...", ";",
];

/// pycocoevalcap's tokens for one caption tokenized on its own: what its
/// `PTBTokenizer` joins with spaces.
///
/// Newlines in the caption are spaces (pycocoevalcap replaces `\n` before tokenizing).
/// See [`tokenize_all`] for captions that pycocoevalcap tokenizes together.
pub fn tokenize(caption: &str) -> Vec<String> {
    tokenize_all(&[caption]).pop().unwrap_or_default()
}

/// pycocoevalcap's tokens for captions tokenized in one `PTBTokenizer.tokenize` call,
/// in that call's order (for `COCOEvalCap`: all references image by image, then
/// separately all candidates).
///
/// pycocoevalcap writes the captions one per line to one file, and the lexer's
/// lookahead crosses lines: whether "I." at the end of a caption is "i" or "i." can
/// depend on the next caption's first word. Tokenizing the same captions in the same
/// order reproduces that exactly.
pub fn tokenize_all<S: AsRef<str>>(captions: &[S]) -> Vec<Vec<String>> {
    let mut out: Vec<Vec<String>> = vec![Vec::new(); captions.len()];
    let mut text: Vec<char> = Vec::new();
    let mut display: Vec<Option<char>> = Vec::new();
    for (i, caption) in captions.iter().enumerate() {
        if i > 0 {
            text.push('\n');
            display.push(Some('\n'));
        }
        for c in caption.as_ref().chars() {
            let c = if c == '\n' { ' ' } else { c };
            if c > '\u{FFFF}' {
                text.extend([HIGH_UNIT, LOW_UNIT]);
                display.extend([Some(c), None]);
            } else {
                text.push(c);
                display.push(Some(c));
            }
        }
    }
    // Tokens never contain a newline, so a token's line is the caption it came from.
    let mut line = 0;
    let mut line_end = text.iter().position(|&c| c == '\n').unwrap_or(text.len());
    lex(&text, &display, &mut |start: usize, token: &str| {
        while start > line_end {
            line += 1;
            line_end = text[line_end + 1..]
                .iter()
                .position(|&c| c == '\n')
                .map_or(text.len(), |p| line_end + 1 + p);
        }
        if let Some(tokens) = out.get_mut(line) {
            tokens.push(java_lowercase(token));
        }
    });
    for tokens in &mut out {
        // pycocoevalcap's `line.rstrip()`: a line's last token loses trailing Unicode
        // whitespace (a U+3000 inside an e-mail token, say); the filter comes after.
        if let Some(last) = tokens.last_mut() {
            let kept = last.trim_end_matches(is_python_space).len();
            last.truncate(kept);
        }
        tokens.retain(|t| !PUNCTUATIONS.contains(&t.as_str()));
    }
    out
}

/// Python's `str.isspace()`.
fn is_python_space(c: char) -> bool {
    matches!(c, '\t'..='\r' | '\u{1C}'..='\u{20}' | '\u{85}' | '\u{A0}' | '\u{1680}' | '\u{2000}'..='\u{200A}'
        | '\u{2028}' | '\u{2029}' | '\u{202F}' | '\u{205F}' | '\u{3000}')
}

/// Stand-ins for the two UTF-16 surrogates of a character above U+FFFF (private-use
/// characters: no positive class or literal of the lexer contains them).
const HIGH_UNIT: char = '\u{F8FE}';
const LOW_UNIT: char = '\u{F8FF}';

/// Java's `String.toLowerCase()` for our purposes: Rust's full Unicode lowercasing
/// (both map final sigma contextually and `İ` to `i̇`).
fn java_lowercase(s: &str) -> String {
    if s.bytes().all(|b| !b.is_ascii_uppercase() && b.is_ascii()) {
        s.to_owned()
    } else {
        s.to_lowercase()
    }
}

// ---------------------------------------------------------------------------------------
// A small regular-expression engine over `&[char]`.

/// Which ASCII characters can begin a non-empty match (bit per char), and whether a
/// non-ASCII one or the empty match can: a cheap test before trying an alternative.
#[derive(Clone, Copy)]
struct First {
    ascii: u128,
    other: bool,
    nullable: bool,
}

impl First {
    fn of(re: &Re) -> First {
        let mut ascii = 0u128;
        for c in 0..128u8 {
            if re.can_start(c as char) {
                ascii |= 1 << c;
            }
        }
        // Non-ASCII: assume possible unless the expression is built from ASCII literals.
        First {
            ascii,
            other: !re.ascii_only_start(),
            nullable: re.nullable(),
        }
    }

    fn may_start(&self, c: char) -> bool {
        self.nullable
            || if c.is_ascii() {
                self.ascii >> (c as u32) & 1 == 1
            } else {
                self.other
            }
    }
}

/// A character predicate (a JFlex character class).
type Class = Arc<dyn Fn(char) -> bool + Send + Sync>;

/// A regular expression; [`Re::ends`] gives every position where a match starting at
/// any of the given positions can end.
#[derive(Clone)]
enum Re {
    /// One character of a class (case-sensitive, as JFlex classes are under %caseless).
    Class(Class),
    /// A literal string, matched caselessly (JFlex %caseless).
    Lit(Vec<char>),
    Seq(Vec<Re>),
    /// Options with their [`First`] filters.
    Alt(Vec<(First, Re)>),
    /// `min..=max` repetitions (`max == u16::MAX`: unbounded).
    Rep(Box<Re>, u16, u16),
}

const INF: u16 = u16::MAX;

fn chars_equal_caseless(a: char, b: char) -> bool {
    a == b || (a.is_alphabetic() && simple_lower(a) == simple_lower(b))
}

fn simple_lower(c: char) -> char {
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

impl Re {
    /// Whether the empty string matches.
    fn nullable(&self) -> bool {
        match self {
            Re::Class(_) => false,
            Re::Lit(lit) => lit.is_empty(),
            Re::Seq(parts) => parts.iter().all(Re::nullable),
            Re::Alt(options) => options.iter().any(|(_, o)| o.nullable()),
            Re::Rep(inner, min, _) => *min == 0 || inner.nullable(),
        }
    }

    /// Whether every match begins with an ASCII literal character (so no non-ASCII
    /// character can start one). Conservative: classes count as "maybe non-ASCII".
    fn ascii_only_start(&self) -> bool {
        match self {
            Re::Class(_) => false,
            Re::Lit(lit) => lit
                .first()
                .is_some_and(|c| c.is_ascii() && !matches!(c, 'k' | 'K' | 's' | 'S')),
            Re::Seq(parts) => parts
                .first()
                .is_some_and(|p| !p.nullable() && p.ascii_only_start()),
            Re::Alt(options) => options.iter().all(|(_, o)| o.ascii_only_start()),
            Re::Rep(inner, min, _) => *min > 0 && inner.ascii_only_start(),
        }
    }

    /// Whether a match can begin with `c`.
    fn can_start(&self, c: char) -> bool {
        match self {
            Re::Class(class) => class(c),
            Re::Lit(lit) => lit.first().is_some_and(|&l| chars_equal_caseless(l, c)),
            Re::Seq(parts) => {
                for part in parts {
                    if part.can_start(c) {
                        return true;
                    }
                    if !part.nullable() {
                        return false;
                    }
                }
                false
            }
            Re::Alt(options) => options.iter().any(|(_, o)| o.can_start(c)),
            Re::Rep(inner, _, _) => inner.can_start(c),
        }
    }

    /// Appends to `out` (sorted, deduplicated) every end of a match starting at a
    /// position in `starts` (sorted, deduplicated).
    ///
    /// `pool` recycles the temporary position sets, so matching does not allocate once
    /// warmed up.
    fn ends(
        &self,
        text: &[char],
        starts: &[usize],
        out: &mut Vec<usize>,
        pool: &mut Vec<Vec<usize>>,
    ) {
        out.clear();
        match self {
            Re::Class(class) => {
                for &s in starts {
                    if s < text.len() && class(text[s]) {
                        out.push(s + 1);
                    }
                }
            }
            Re::Lit(lit) => {
                for &s in starts {
                    if s + lit.len() <= text.len()
                        && lit
                            .iter()
                            .zip(&text[s..])
                            .all(|(&a, &b)| chars_equal_caseless(a, b))
                    {
                        out.push(s + lit.len());
                    }
                }
            }
            Re::Seq(parts) => {
                let mut current = pool.pop().unwrap_or_default();
                let mut next = pool.pop().unwrap_or_default();
                current.clear();
                current.extend_from_slice(starts);
                for part in parts {
                    if current.is_empty() {
                        break;
                    }
                    part.ends(text, &current, &mut next, pool);
                    std::mem::swap(&mut current, &mut next);
                }
                out.extend_from_slice(&current);
                pool.push(current);
                pool.push(next);
            }
            Re::Alt(options) => {
                let mut part = pool.pop().unwrap_or_default();
                for (first, option) in options {
                    if !starts
                        .iter()
                        .any(|&s| s < text.len() && first.may_start(text[s]))
                    {
                        continue;
                    }
                    option.ends(text, starts, &mut part, pool);
                    out.extend_from_slice(&part);
                }
                pool.push(part);
                out.sort_unstable();
                out.dedup();
            }
            Re::Rep(inner, min, max) => {
                let mut frontier = pool.pop().unwrap_or_default();
                let mut next = pool.pop().unwrap_or_default();
                frontier.clear();
                frontier.extend_from_slice(starts);
                if *min == 0 {
                    out.extend_from_slice(starts);
                }
                let mut count = 0u16;
                while !frontier.is_empty() && count < *max {
                    inner.ends(text, &frontier, &mut next, pool);
                    count += 1;
                    if count >= *min {
                        // Unbounded repetition: only positions not seen yet need expanding.
                        if *max == INF {
                            next.retain(|p| out.binary_search(p).is_err());
                        }
                        out.extend_from_slice(&next);
                        out.sort_unstable();
                        out.dedup();
                    }
                    std::mem::swap(&mut frontier, &mut next);
                }
                pool.push(frontier);
                pool.push(next);
            }
        }
    }
}

// Constructors, named after JFlex syntax.
fn class(f: impl Fn(char) -> bool + Send + Sync + 'static) -> Re {
    Re::Class(Arc::new(f))
}
/// `[...]` from a list of chars and ranges, written as pairs.
fn set(singles: &'static str, ranges: &'static [(char, char)]) -> Re {
    class(move |c| singles.contains(c) || ranges.iter().any(|&(a, b)| a <= c && c <= b))
}
/// `[^...]`.
fn not_set(singles: &'static str) -> Re {
    class(move |c| !singles.contains(c))
}
fn lit(s: &str) -> Re {
    Re::Lit(s.chars().collect())
}
fn lits(options: &[&str]) -> Re {
    alt(options.iter().map(|s| lit(s)).collect())
}
fn seq(parts: Vec<Re>) -> Re {
    Re::Seq(parts)
}
fn alt(options: Vec<Re>) -> Re {
    Re::Alt(options.into_iter().map(|o| (First::of(&o), o)).collect())
}
fn rep(re: Re, min: u16, max: u16) -> Re {
    Re::Rep(Box::new(re), min, max)
}
fn opt(re: Re) -> Re {
    rep(re, 0, 1)
}
fn star(re: Re) -> Re {
    rep(re, 0, INF)
}
fn plus(re: Re) -> Re {
    rep(re, 1, INF)
}

// ---------------------------------------------------------------------------------------
// Character classes.

/// Java `Character.isLetter` (approximately; see the module docs).
fn is_letter(c: char) -> bool {
    c <= '\u{FFFF}' && c.is_alphabetic() && !('\u{2160}'..='\u{2188}').contains(&c)
}

/// Java `Character.isDigit` (Unicode Nd) for the BMP.
fn is_digit(c: char) -> bool {
    c.is_ascii_digit()
        || (c > '\u{7F}'
            && c <= '\u{FFFF}'
            && c.is_numeric()
            && c.to_digit(10).is_none()
            && !matches!(c,
                '\u{B2}' | '\u{B3}' | '\u{B9}' | '\u{BC}'..='\u{BE}' | '\u{9F4}'..='\u{9F9}'
                | '\u{BF0}'..='\u{BF2}' | '\u{F2A}'..='\u{F33}' | '\u{1369}'..='\u{137C}'
                | '\u{16EE}'..='\u{16F0}' | '\u{17F0}'..='\u{17F9}' | '\u{2070}'..='\u{2189}'
                | '\u{2460}'..='\u{24FF}' | '\u{2776}'..='\u{2793}' | '\u{2CFD}' | '\u{3007}'
                | '\u{3021}'..='\u{3029}' | '\u{3038}'..='\u{303A}' | '\u{3192}'..='\u{3195}'
                | '\u{3220}'..='\u{3229}' | '\u{3248}'..='\u{324F}' | '\u{3251}'..='\u{325F}'
                | '\u{3280}'..='\u{3289}' | '\u{32B1}'..='\u{32BF}' | '\u{A830}'..='\u{A835}'
                | '\u{A6E6}'..='\u{A6EF}')
            && is_nd(c))
}

/// Decimal-digit blocks of the BMP (Unicode Nd ranges, each 10 long).
fn is_nd(c: char) -> bool {
    const STARTS: [u32; 37] = [
        0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
        0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
        0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
        0xFF10, 0x104A0,
    ];
    let u = c as u32;
    STARTS.iter().any(|&s| u >= s && u < s + 10)
}

fn letter() -> Re {
    class(is_letter)
}
fn digit() -> Re {
    // DIGIT = [:digit:]|[\u07C0-\u07C9]
    class(|c| is_digit(c) || ('\u{7C0}'..='\u{7C9}').contains(&c))
}
fn letter_or_digit() -> Re {
    class(|c| is_letter(c) || is_digit(c))
}
fn ascii_alnum() -> Re {
    class(|c| c.is_ascii_alphanumeric())
}
fn ascii_alpha() -> Re {
    class(|c| c.is_ascii_alphabetic())
}
fn ascii_digit() -> Re {
    class(|c| c.is_ascii_digit())
}
fn upper_ascii() -> Re {
    class(|c| c.is_ascii_uppercase())
}

/// Extra word characters `PTBLexer.flex` adds to `[:letter:]` (soft hyphen, some IPA,
/// combining marks, Greek, Cyrillic, Hebrew, Arabic and Indic signs).
const EXTRA_LETTER_RANGES: &[(char, char)] = &[
    ('\u{00AD}', '\u{00AD}'),
    ('\u{0237}', '\u{024F}'),
    ('\u{02C2}', '\u{02C5}'),
    ('\u{02D2}', '\u{02DF}'),
    ('\u{02E5}', '\u{02FF}'),
    ('\u{0300}', '\u{036F}'),
    ('\u{0370}', '\u{037D}'),
    ('\u{0384}', '\u{0385}'),
    ('\u{03CF}', '\u{03CF}'),
    ('\u{03F6}', '\u{03F6}'),
    ('\u{03FC}', '\u{03FF}'),
    ('\u{0483}', '\u{0487}'),
    ('\u{04CF}', '\u{04CF}'),
    ('\u{04F6}', '\u{04FF}'),
    ('\u{0510}', '\u{0525}'),
    ('\u{055A}', '\u{055F}'),
    ('\u{0591}', '\u{05BD}'),
    ('\u{05BF}', '\u{05BF}'),
    ('\u{05C1}', '\u{05C2}'),
    ('\u{05C4}', '\u{05C5}'),
    ('\u{05C7}', '\u{05C7}'),
    ('\u{0615}', '\u{061A}'),
    ('\u{063B}', '\u{063F}'),
    ('\u{064B}', '\u{065E}'),
    ('\u{0670}', '\u{0670}'),
    ('\u{06D6}', '\u{06EF}'),
    ('\u{06FA}', '\u{06FF}'),
    ('\u{070F}', '\u{070F}'),
    ('\u{0711}', '\u{0711}'),
    ('\u{0730}', '\u{074F}'),
    ('\u{0750}', '\u{077F}'),
    ('\u{07A6}', '\u{07B1}'),
    ('\u{07CA}', '\u{07F5}'),
    ('\u{07FA}', '\u{07FA}'),
    ('\u{0900}', '\u{0903}'),
    ('\u{093C}', '\u{093C}'),
    ('\u{093E}', '\u{094E}'),
    ('\u{0951}', '\u{0955}'),
    ('\u{0962}', '\u{0963}'),
    ('\u{0981}', '\u{0983}'),
    ('\u{09BC}', '\u{09C4}'),
    ('\u{09C7}', '\u{09C8}'),
    ('\u{09CB}', '\u{09CD}'),
    ('\u{09D7}', '\u{09D7}'),
    ('\u{09E2}', '\u{09E3}'),
    ('\u{0A01}', '\u{0A03}'),
    ('\u{0A3C}', '\u{0A3C}'),
    ('\u{0A3E}', '\u{0A4F}'),
    ('\u{0A81}', '\u{0A83}'),
    ('\u{0ABC}', '\u{0ACF}'),
    ('\u{0B82}', '\u{0B82}'),
    ('\u{0BBE}', '\u{0BC2}'),
    ('\u{0BC6}', '\u{0BC8}'),
    ('\u{0BCA}', '\u{0BCD}'),
    ('\u{0C01}', '\u{0C03}'),
    ('\u{0C3E}', '\u{0C56}'),
    ('\u{0D3E}', '\u{0D44}'),
    ('\u{0D46}', '\u{0D48}'),
    ('\u{0E30}', '\u{0E3A}'),
    ('\u{0E47}', '\u{0E4E}'),
    ('\u{0EB1}', '\u{0EBC}'),
    ('\u{0EC8}', '\u{0ECD}'),
];

/// `[+%&~\^|\\¦§¨©¬®¯°-³´-º×÷…]` and the symbol blocks: tokens on their own.
const MISC_SYMBOL_RANGES: &[(char, char)] = &[
    ('\u{00A6}', '\u{00A9}'),
    ('\u{00AC}', '\u{00AC}'),
    ('\u{00AE}', '\u{00AF}'),
    ('\u{00B0}', '\u{00BA}'),
    ('\u{00D7}', '\u{00D7}'),
    ('\u{00F7}', '\u{00F7}'),
    ('\u{0387}', '\u{0387}'),
    ('\u{05BE}', '\u{05BE}'),
    ('\u{05C0}', '\u{05C0}'),
    ('\u{05C3}', '\u{05C3}'),
    ('\u{05C6}', '\u{05C6}'),
    ('\u{05F3}', '\u{05F4}'),
    ('\u{0600}', '\u{0603}'),
    ('\u{0606}', '\u{060A}'),
    ('\u{060C}', '\u{060C}'),
    ('\u{0614}', '\u{0614}'),
    ('\u{061B}', '\u{061B}'),
    ('\u{061E}', '\u{061E}'),
    ('\u{066A}', '\u{066A}'),
    ('\u{066D}', '\u{066D}'),
    ('\u{0703}', '\u{070D}'),
    ('\u{07F6}', '\u{07F8}'),
    ('\u{0964}', '\u{0965}'),
    ('\u{0E4F}', '\u{0E4F}'),
    ('\u{1FBD}', '\u{1FBD}'),
    ('\u{2016}', '\u{2017}'),
    ('\u{2020}', '\u{2023}'),
    ('\u{2030}', '\u{2038}'),
    ('\u{203B}', '\u{203B}'),
    ('\u{203E}', '\u{2042}'),
    ('\u{2044}', '\u{2044}'),
    ('\u{207A}', '\u{207F}'),
    ('\u{208A}', '\u{208E}'),
    ('\u{2100}', '\u{214F}'),
    ('\u{2190}', '\u{21FF}'),
    ('\u{2200}', '\u{2BFF}'),
    ('\u{3012}', '\u{3012}'),
    ('\u{30FB}', '\u{30FB}'),
    ('\u{FF01}', '\u{FF0F}'),
    ('\u{FF1A}', '\u{FF20}'),
    ('\u{FF3B}', '\u{FF40}'),
    ('\u{FF5B}', '\u{FF65}'),
];

// ---------------------------------------------------------------------------------------
// The lexer's rules.

/// What a rule does with its text.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Action {
    /// The text as it is.
    Keep,
    /// Soft hyphens removed (an all-soft-hyphen token becomes "-").
    SoftHyphens,
    /// `&amp;` → `&`.
    Amp,
    /// Return the text minus its last `n` chars; they are lexed again.
    PushBack(usize),
    /// Quote normalization (LaTeX style), `true`: probably a left quote.
    Quotes(bool),
    /// Spaces become U+00A0 (SGML, fractions).
    Nbsp,
    /// Spaces → U+00A0 and parentheses → -LRB-/-RRB- (phone numbers).
    Phone,
    /// A fixed replacement.
    Replace(&'static str),
    /// Three or four hyphens become "--".
    Hyphens,
    /// `¼ ½ ¾ ⅓ ⅔` spelled out.
    Fraction,
    /// `¢` → cents, `£` → #, `€ ¤ ₠` and CP1252 0x80 → $.
    Currency,
    /// Abbreviation before a sentence end: the token keeps its period and the period
    /// is also returned again as the next token.
    DoublePeriod,
    /// ACRONYM before a sentence start: trailing spaces dropped, then [`Action::DoublePeriod`].
    Acronym,
    /// Smiley: parentheses → -LRB-/-RRB-.
    Smiley,
    /// Dropped (whitespace, untokenizable characters, `&nbsp;`).
    Delete,
}

struct Rule {
    /// For ASCII `c`, whether a match can start with `c` (a cheap filter).
    ascii_start: [bool; 128],
    re: Re,
    /// Trailing context (JFlex `r1/r2`): must follow, counts for the match length, is
    /// not consumed.
    context: Option<Re>,
    action: Action,
}

fn rule(re: Re, action: Action) -> Rule {
    let ascii_start = std::array::from_fn(|c| re.can_start(c as u8 as char));
    Rule {
        ascii_start,
        re,
        context: None,
        action,
    }
}
fn rule_ctx(re: Re, context: Re, action: Action) -> Rule {
    Rule {
        context: Some(context),
        ..rule(re, action)
    }
}

impl Rule {
    fn can_start(&self, c: char) -> bool {
        match self.ascii_start.get(c as usize) {
            Some(&can) => can,
            None => self.re.can_start(c),
        }
    }
}

/// Words that a rule other than WORD claims even when followed by a space
/// (splitAssimilations).
const ASSIMILATIONS: [&str; 6] = ["cannot", "gonna", "gotta", "lemme", "gimme", "wanna"];

/// The fast path: at `pos`, a run of ASCII letters followed by a space, tab, newline or
/// the end (or by one of `, ; : ! ?` and then one of those) is one WORD token (no other rule matches longer; ABBREV4/{SPACE} gives the
/// same text), except the assimilations. Returns its end.
fn plain_word(text: &[char], pos: usize) -> Option<usize> {
    let len = text[pos..]
        .iter()
        .take_while(|c| c.is_ascii_alphabetic())
        .count();
    if len == 0 {
        return None;
    }
    let end = pos + len;
    let boundary = |i: usize| i >= text.len() || matches!(text[i], ' ' | '\t' | '\n');
    // Also before `, ; : ! ?` and a boundary: no rule continues a plain word through
    // those when a space follows (a period, though, starts abbreviations: slow path).
    if !(boundary(end) || (matches!(text[end], ',' | ';' | ':' | '!' | '?') && boundary(end + 1))) {
        return None;
    }
    let word = &text[pos..end];
    let special = len >= 5
        && ASSIMILATIONS.iter().any(|a| {
            a.len() == len
                && a.chars()
                    .zip(word)
                    .all(|(x, y)| x == y.to_ascii_lowercase())
        });
    (!special).then_some(end)
}

/// The rules of `PTBLexer.flex` (CoreNLP 3.4.1 as its jar behaves), in its order.
fn rules() -> &'static [Rule] {
    static RULES: OnceLock<Vec<Rule>> = OnceLock::new();
    RULES.get_or_init(build_rules)
}

fn build_rules() -> Vec<Rule> {
    use Action::*;
    // --- Macros.
    let space_chars: &[(char, char)] = &[('\u{2000}', '\u{200A}')];
    let space = || set(" \t\u{A0}\u{3000}", &[('\u{2000}', '\u{200A}')]);
    let _ = space_chars;
    let spaces = || plus(space());
    let newline = || {
        alt(vec![
            lit("\r\n"),
            set("\r\n\u{2028}\u{2029}\u{B}\u{C}\u{85}", &[]),
        ])
    };
    let spacenl = || alt(vec![space(), newline()]);
    let apos = || alt(vec![set("'\u{92}\u{2019}", &[]), lit("&apos;")]);
    let aposetc = || alt(vec![apos(), set("\u{91}\u{2018}\u{201B}", &[])]);
    let splet = || {
        seq(vec![
            lit("&"),
            set("aeiouAEIOU", &[]),
            lits(&["acute", "grave", "uml"]),
            lit(";"),
        ])
    };
    let word_char = || alt(vec![letter(), splet(), set("", EXTRA_LETTER_RANGES)]);
    let word_body = || star(alt(vec![word_char(), digit()]));
    // WORD = {LETTER}({LETTER}|{DIGIT})*([.!?]{LETTER}({LETTER}|{DIGIT})*)*
    let word = || {
        seq(vec![
            word_char(),
            word_body(),
            star(seq(vec![set(".!?", &[]), word_char(), word_body()])),
        ])
    };
    // SGML1: `<!…>`, `<?…>`, `<tag attr=value …/>` or `</tag>` (may cross lines).
    let sgml = || {
        let name_char = || class(|c| c.is_ascii_alphanumeric() || "_:.-".contains(c));
        let name = || seq(vec![ascii_alpha(), star(name_char())]);
        let ws = || set(" \r\n", &[]);
        let value = || {
            alt(vec![
                seq(vec![lit("'"), star(not_set("'")), lit("'")]),
                seq(vec![lit("\""), star(not_set("\"")), lit("\"")]),
                seq(vec![
                    class(|c| c.is_ascii_alphabetic() || c == '_'),
                    star(name_char()),
                ]),
            ])
        };
        seq(vec![
            lit("<"),
            alt(vec![
                seq(vec![
                    set("!?", &[]),
                    class(|c| c.is_ascii_alphabetic() || c == '-'),
                    star(not_set(">\r\n")),
                ]),
                seq(vec![
                    name(),
                    star(seq(vec![
                        plus(ws()),
                        alt(vec![
                            name(),
                            seq(vec![name(), star(ws()), lit("="), star(ws()), value()]),
                        ]),
                    ])),
                    star(ws()),
                    opt(lit("/")),
                ]),
                seq(vec![lit("/"), name()]),
            ]),
            star(ws()),
            lit(">"),
        ])
    };
    let redaux = || {
        seq(vec![
            apos(),
            alt(vec![set("msdMSD", &[]), lits(&["re", "ve", "ll"])]),
        ])
    };
    let sword = || {
        seq(vec![
            star(class(|c| c.is_ascii_alphabetic() || c == '\u{AD}')),
            class(|c| c.is_ascii_alphabetic() && c != 'n' && c != 'N'),
            star(set("\u{AD}", &[])),
        ])
    };
    let sredaux = || seq(vec![lit("n"), aposetc(), lit("t")]);
    let date_sep = || set("-/", &[]);
    let num = || {
        alt(vec![
            plus(digit()),
            seq(vec![
                star(digit()),
                plus(seq(vec![
                    set(".:,\u{AD}\u{66B}\u{66C}", &[]),
                    plus(digit()),
                ])),
            ]),
        ])
    };
    let number = || seq(vec![opt(set("-+", &[])), num()]);
    let hyphen = || set("-_\u{58A}\u{2010}\u{2011}", &[]);
    let acro = || {
        alt(vec![
            seq(vec![
                ascii_alpha(),
                plus(seq(vec![lit("."), ascii_alpha()])),
            ]),
            seq(vec![
                lits(&["Canada", "Sino", "Korean", "EU", "Japan", "non"]),
                lit("-U.S"),
            ]),
            seq(vec![lit("U.S.-"), lits(&["U.K", "U.S.S.R"])]),
        ])
    };
    let ci = |s: &str| lit(s);
    // Case-sensitive first letter, as `[A]rk` in the flex file.
    let cs = |first: &'static str, rest: &str| seq(vec![set(first, &[]), lit(rest)]);
    let abmonth = || {
        lits(&[
            "Jan", "Feb", "Mar", "Apr", "Jun", "Jul", "Aug", "Sep", "Sept", "Oct", "Nov", "Dec",
        ])
    };
    let abdays = || lits(&["Mon", "Tue", "Tues", "Wed", "Thu", "Thurs", "Fri"]);
    let abstate = || {
        alt(vec![
            lits(&[
                "Ala", "Ariz", "Calif", "Colo", "Conn", "Dak", "Del", "Fla", "Ga", "Ind", "Kan",
                "Kans", "Ky", "La",
            ]),
            lits(&[
                "Md", "Mich", "Minn", "Mo", "Mont", "Neb", "Nev", "Okla", "Pa", "Penn", "Tenn",
                "Tex", "Va",
            ]),
            lits(&["Vt", "Wis", "Wisc", "Wyo"]),
            cs("A", "rk"),
            cs("I", "ll"),
            cs("M", "ass"),
            cs("M", "iss"),
            cs("O", "re"),
            cs("W", "ash"),
        ])
    };
    let abcomp = || {
        lits(&[
            "Inc", "Co", "Cos", "Corp", "Pty", "Ptys", "Ppty", "Pptys", "Ltd", "Plc", "Bancorp",
            "Dept", "Bhd", "Assn", "Univ", "Intl", "Sys",
        ])
    };
    let abnum = || lits(&["Prop", "Ph", "tel", "est", "ext", "sq", "ft"]);
    let abptit = || {
        alt(vec![
            lits(&["Jr", "Sr", "Bros", "Blvd", "Rd", "Esq"]),
            seq(vec![lits(&["Ed", "Ph"]), lit(".D")]),
        ])
    };
    let abbrev1 = || {
        seq(vec![
            alt(vec![
                abmonth(),
                abdays(),
                abstate(),
                abcomp(),
                abnum(),
                abptit(),
                lits(&["etc", "al", "seq"]),
            ]),
            lit("."),
        ])
    };
    let abtitle = || {
        alt(vec![
            lits(&[
                "Mr", "Mrs", "Ms", "Dr", "Drs", "Prof", "Profs", "Sen", "Sens", "Rep", "Reps",
                "Atty", "Attys", "Lt",
            ]),
            lits(&[
                "Col", "Gen", "Messrs", "Gov", "Govs", "Adm", "Rev", "Maj", "Sgt", "Cpl", "Pvt",
                "Mt", "Capt", "St",
            ]),
            lits(&[
                "Ste", "Ave", "Pres", "Lieut", "Hon", "Brig", "Cmdr", "Comdr", "Pfc", "Spc",
                "Supt", "Supts", "Det",
            ]),
            cs("M", "iss"),
        ])
    };
    let abcomp2 = || lits(&["Invt", "Elec", "Natl", "Mfg", "Mtg"]);
    let abbrev4 = || {
        alt(vec![
            ascii_alpha(),
            abtitle(),
            lits(&["vs", "Alex", "Wm", "Jos", "Cie", "a.k.a", "cf", "TREAS"]),
            acro(),
            abcomp2(),
        ])
    };
    let sentend = || seq(vec![spacenl(), alt(vec![spacenl(), upper_ascii(), sgml()])]);
    let insentp = || set(",;:\u{3001}", &[]);
    let thing_piece = || {
        seq(vec![
            opt(seq(vec![set("dDoOlL", &[]), aposetc(), letter_or_digit()])),
            plus(letter_or_digit()),
        ])
    };
    let thing = || {
        seq(vec![
            thing_piece(),
            star(seq(vec![hyphen(), thing_piece()])),
        ])
    };
    let spamp = || lit("&amp;");
    let thinga = || {
        seq(vec![
            plus(upper_ascii()),
            plus(seq(vec![
                alt(vec![set("+&", &[]), spamp()]),
                plus(upper_ascii()),
            ])),
        ])
    };
    let alnum_hyph = || rep(seq(vec![lit("-"), plus(ascii_alpha())]), 0, 2);
    let thing3 = || {
        seq(vec![
            plus(ascii_alnum()),
            alnum_hyph(),
            rep(
                seq(vec![
                    opt(lit("\\")),
                    lit("/"),
                    plus(ascii_alnum()),
                    alnum_hyph(),
                ]),
                1,
                2,
            ),
        ])
    };
    let hthing = || {
        seq(vec![
            ascii_alnum(),
            star(class(|c| {
                c.is_ascii_alphanumeric() || c == '.' || c == ',' || c == '\u{AD}'
            })),
            plus(seq(vec![
                lit("-"),
                alt(vec![
                    plus(class(|c| c.is_ascii_alphanumeric() || c == '\u{AD}')),
                    seq(vec![acro(), lit(".")]),
                ]),
            ])),
        ])
    };
    let d = digit;
    let phone = || {
        let sep = || set("- \u{A0}", &[]);
        let ad = ascii_digit;
        alt(vec![
            seq(vec![
                alt(vec![
                    seq(vec![
                        lit("("),
                        rep(ad(), 2, 3),
                        lit(")"),
                        opt(set(" \u{A0}", &[])),
                    ]),
                    seq(vec![
                        opt(seq(vec![lit("+"), opt(lit("+"))])),
                        opt(seq(vec![rep(ad(), 2, 4), sep()])),
                        rep(ad(), 2, 4),
                        sep(),
                    ]),
                ]),
                rep(ad(), 3, 4),
                opt(sep()),
                rep(ad(), 3, 5),
            ]),
            seq(vec![
                opt(seq(vec![
                    opt(seq(vec![lit("+"), opt(lit("+"))])),
                    rep(ad(), 2, 4),
                    lit("."),
                ])),
                rep(ad(), 2, 4),
                lit("."),
                rep(ad(), 3, 4),
                lit("."),
                rep(ad(), 3, 5),
            ]),
        ])
    };
    let url_stop = " \t\n\u{C}\r\"<>|()";
    let email_domain = || not_set(" \t\n\u{C}\r\"<>|(){}.\u{A0}");
    let filename_ext = || {
        lits(&[
            "bat", "bmp", "bz2", "c", "class", "cgi", "cpp", "dll", "doc", "docx", "exe", "gif",
            "gz", "h", "htm", "html", "jar", "java", "jpeg", "jpg", "mov", "mp3", "pdf", "php",
            "pl", "png", "ppt", "ps", "py", "sql", "tar", "txt", "wav", "x", "xml", "zip", "3gp",
            "wmv", "wma", "avi", "flv", "mp4", "mpg",
        ])
    };
    let alpha_digit = || class(|c| is_letter(c) || is_digit(c));
    let filename = || {
        seq(vec![
            plus(alpha_digit()),
            // Measured: only dots join the parts ("a-b.jpg" is not one token).
            star(seq(vec![lit("."), plus(alpha_digit())])),
            lit("."),
            filename_ext(),
        ])
    };
    let apoword = || {
        alt(vec![
            seq(vec![apos(), lit("n"), opt(apos())]),
            seq(vec![set("lLdDjJ", &[]), apos()]),
            seq(vec![lits(&["Dunkin", "somethin", "ol"]), apos()]),
            seq(vec![apos(), lit("em")]),
            seq(vec![
                class(|c| matches!(c, 'A'..='H' | 'J'..='X' | 'Z' | 'n')),
                aposetc(),
                letter(),
                letter(),
                star(letter()),
            ]),
            seq(vec![apos(), set("23456789", &[]), lit("0s")]),
            seq(vec![apos(), lit("til"), opt(lit("l"))]),
            seq(vec![
                letter(),
                star(letter()),
                set("aeiouyAEIOUY", &[]),
                aposetc(),
                class(|c| "aeiou".contains(c) || c.is_ascii_uppercase()),
                star(letter()),
            ]),
            seq(vec![apos(), lit("cause")]),
            seq(vec![lit("cont'd"), opt(lit("."))]),
            lits(&[
                "'twas",
                "nor'easter",
                "c'mon",
                "e'er",
                "s'mores",
                "ev'ry",
                "li'l",
                "nat'l",
            ]),
        ])
    };
    let quotes = || {
        alt(vec![
            apos(),
            lit("''"),
            rep(set("`\u{2018}\u{2019}\u{201A}\u{201B}\u{201C}\u{201D}\u{91}\u{92}\u{93}\u{94}\u{201E}\u{201F}\u{2039}\u{203A}\u{AB}\u{BB}", &[]), 1, 2),
        ])
    };

    vec![
        // PROG_LANGS
        rule(alt(vec![lit("c++"), seq(vec![set("cCfF", &[]), lit("#")])]), Keep),
        // ASSIMILATIONS3 / ASSIMILATIONS2 (splitAssimilations).
        rule(alt(vec![ci("cannot"), seq(vec![apos(), lit("twas")])]), PushBack(3)),
        rule(alt(vec![seq(vec![apos(), lit("tis")]), lits(&["gonna", "gotta", "lemme", "gimme", "wanna"])]), PushBack(2)),
        rule(sgml(), Nbsp),
        // SPMDASH
        rule(alt(vec![seq(vec![lit("&"), lits(&["MD", "mdash", "ndash"]), lit(";")]), set("\u{96}\u{97}\u{2013}\u{2014}\u{2015}", &[])]), Replace("--")),
        rule(spamp(), Amp),
        // SPPUNC
        rule(seq(vec![lit("&"), alt(vec![lits(&["HT", "TL", "UR", "LR", "QC", "QL", "QR", "odq", "cdq"]), seq(vec![lit("#"), plus(ascii_digit())])]), lit(";")]), Keep),
        rule_ctx(word(), redaux(), SoftHyphens),
        rule_ctx(sword(), sredaux(), SoftHyphens),
        rule(word(), SoftHyphens),
        rule(apoword(), Keep),
        rule_ctx(seq(vec![lit("y"), apos()]), letter(), Keep),
        // FULLURL
        rule(seq(vec![lit("http"), opt(lit("s")), lit("://"), plus(not_set(url_stop)), not_set(" \t\n\u{C}\r\"<>|.!?(){},-")]), Keep),
        // LIKELYURL
        rule(
            seq(vec![
                alt(vec![
                    seq(vec![lit("www."), plus(seq(vec![plus(not_set(" \t\n\u{C}\r\"<>|.!?(){},")), lit(".")])), rep(ascii_alpha(), 2, 4)]),
                    seq(vec![
                        plus(seq(vec![
                            plus(class(|c| !(" \t\n\u{C}\r\"`'<>|.!?(){}$".contains(c) || (','..='_').contains(&c)))),
                            lit("."),
                        ])),
                        lits(&["com", "net", "org", "edu"]),
                    ]),
                ]),
                opt(seq(vec![lit("/"), plus(not_set(url_stop)), not_set(" \t\n\u{C}\r\"<>|.!?(){},-")])),
            ]),
            Keep,
        ),
        // EMAIL
        rule(
            seq(vec![
                opt(alt(vec![lit("<"), lit("&lt;")])),
                ascii_alnum(),
                star(not_set(" \t\n\u{C}\r\"<>|(){}\u{A0}")),
                lit("@"),
                star(seq(vec![plus(email_domain()), lit(".")])),
                plus(email_domain()),
                opt(alt(vec![lit(">"), lit("&gt;")])),
            ]),
            Keep,
        ),
        // TWITTER
        rule(
            alt(vec![
                seq(vec![lit("@"), class(|c| c.is_ascii_alphabetic() || c == '_'), star(class(|c| c.is_ascii_alphanumeric() || c == '_'))]),
                // Measured: a hashtag is letters only ("#ab_c" → "#ab" "_" "c").
                seq(vec![lit("#"), plus(word_char())]),
            ]),
            Keep,
        ),
        rule_ctx(redaux(), not_set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"), Quotes(false)),
        rule(sredaux(), Quotes(false)),
        // DATE
        rule(seq(vec![rep(d(), 1, 2), date_sep(), rep(d(), 1, 2), date_sep(), rep(d(), 2, 4)]), Keep),
        rule(number(), SoftHyphens),
        // SUBSUPNUM
        rule(
            seq(vec![
                opt(set("\u{207A}\u{207B}\u{208A}\u{208B}", &[])),
                alt(vec![plus(set("\u{2070}\u{B9}\u{B2}\u{B3}", &[('\u{2074}', '\u{2079}')])), plus(set("", &[('\u{2080}', '\u{2089}')]))]),
            ]),
            Keep,
        ),
        // FRAC
        rule(
            seq(vec![
                opt(seq(vec![rep(d(), 1, 4), set("- \u{A0}", &[])])),
                rep(d(), 1, 4),
                alt(vec![seq(vec![opt(lit("\\")), lit("/")]), lit("\u{2044}")]),
                rep(d(), 1, 4),
            ]),
            Nbsp,
        ),
        rule(set("\u{BC}\u{BD}\u{BE}", &[('\u{2153}', '\u{215E}')]), Fraction),
        // TBSPEC
        rule(
            alt(vec![
                seq(vec![lit("-"), lits(&["RRB", "LRB", "RCB", "LCB", "RSB", "LSB"]), lit("-")]),
                lits(&["C.D.s", "pro-", "anti-"]),
                seq(vec![lit("S"), alt(vec![lit("&"), spamp()]), alt(vec![lit("P-500"), lit("Ls")])]),
                seq(vec![lit("Cap"), apos(), lit("n")]),
                seq(vec![lit("c"), apos(), lit("est")]),
            ]),
            Amp,
        ),
        rule(thing3(), Keep),
        // DOLSIGN
        rule(alt(vec![seq(vec![star(upper_ascii()), lit("$")]), lit("#")]), Keep),
        // DOLSIGN2
        rule(set("\u{A2}\u{A3}\u{A4}\u{A5}\u{80}\u{20A0}\u{20AC}\u{60B}\u{E3F}\u{20A4}\u{FFE0}\u{FFE1}\u{FFE5}\u{FFE6}", &[]), Currency),
        // ACRONYM before a sentence-starting word.
        rule_ctx(
            seq(vec![ascii_alpha(), star(seq(vec![lit("."), ascii_alpha()])), lit(".")]),
            seq(vec![
                plus(spacenl()),
                alt(vec![
                    cs("A", "bout"), cs("A", "ccording"), cs("A", "dditionally"), cs("A", "fter"), cs("A", "n"),
                    set("A", &[]), cs("A", "s"), cs("A", "t"), cs("B", "ut"), cs("E", "arlier"), cs("H", "e"),
                    cs("H", "er"), cs("H", "ere"), cs("H", "owever"), cs("I", "f"), cs("I", "n"), cs("I", "t"),
                    cs("L", "ast"), cs("M", "any"), cs("M", "ore"), cs("M", "r."), cs("M", "s."), cs("N", "ow"),
                    cs("O", "nce"), cs("O", "ne"), cs("O", "ther"), cs("O", "ur"), cs("S", "he"), cs("S", "ince"),
                    cs("S", "o"), cs("S", "ome"), cs("S", "uch"), cs("T", "hat"), cs("T", "he"), cs("T", "hen"),
                    cs("T", "here"), cs("T", "hese"), cs("T", "hey"), cs("T", "his"), cs("W", "e"), cs("W", "hen"),
                    cs("W", "hile"), cs("W", "hat"), cs("Y", "et"), cs("Y", "ou"), sgml(),
                ]),
                spacenl(),
            ]),
            Acronym,
        ),
        // ABBREV3 (before a number)
        rule_ctx(
            seq(vec![lits(&["ca", "fig", "figs", "prop", "no", "nos", "art", "arts", "bldg", "pp", "op"]), lit(".")]),
            seq(vec![opt(spacenl()), digit()]),
            Keep,
        ),
        rule_ctx(abbrev1(), sentend(), DoublePeriod),
        // `{ABBREV1}/[^][^]`: two more characters of any kind make it beat WORD ("etc.a").
        rule_ctx(abbrev1(), rep(class(|_| true), 2, 2), Keep),
        rule(abbrev1(), Keep),
        rule(seq(vec![abbrev4(), lit(".")]), Keep),
        rule_ctx(abbrev4(), space(), Keep),
        rule_ctx(acro(), spacenl(), Keep),
        // TBSPEC2
        rule_ctx(seq(vec![apos(), ascii_digit(), ascii_digit()]), spacenl(), Keep),
        // FILENAME
        rule_ctx(filename(), alt(vec![spacenl(), set(".?!,", &[])]), Keep),
        rule_ctx(seq(vec![word(), lit(".")]), insentp(), SoftHyphens),
        rule(phone(), Phone),
        // DBLQUOT
        rule_ctx(alt(vec![lit("\""), lit("&quot;")]), class(|c| c.is_ascii_alphanumeric() || c == '$'), Quotes(true)),
        rule(alt(vec![lit("\""), lit("&quot;")]), Quotes(false)),
        rule(lit("\u{7F}"), Delete),
        rule(alt(vec![lit("<"), lit("&lt;")]), Replace("<")),
        rule(alt(vec![lit(">"), lit("&gt;")]), Replace(">")),
        // SMILEY
        rule_ctx(
            seq(vec![opt(set("<>", &[])), set(":;=", &[]), opt(set("-o*'", &[])), set("()DPdpO\\{@|[]", &[])]),
            class(|c| !c.is_ascii_alphanumeric()),
            Smiley,
        ),
        rule(lit("{"), Replace("-LCB-")),
        rule(lit("}"), Replace("-RCB-")),
        rule(lit("["), Replace("-LSB-")),
        rule(lit("]"), Replace("-RSB-")),
        rule(lit("("), Replace("-LRB-")),
        rule(lit(")"), Replace("-RRB-")),
        rule(plus(lit("-")), Hyphens),
        // LDOTS
        rule(
            alt(vec![rep(lit("."), 3, 5), seq(vec![rep(seq(vec![lit("."), set(" \u{A0}", &[])]), 2, 4), lit(".")]), set("\u{85}\u{2026}", &[])]),
            Replace("..."),
        ),
        // FNMARKS
        rule(alt(vec![plus(lit("@")), plus(lit("#")), plus(lit("_"))]), Keep),
        // ASTS
        rule(alt(vec![plus(lit("*")), rep(lit("\\*"), 1, 3)]), Keep),
        rule(insentp(), Keep),
        rule(plus(set("?!", &[])), Keep),
        rule(set(".\u{A1}\u{BF}\u{37E}\u{589}\u{61F}\u{6D4}\u{7FA}\u{3002}", &[('\u{700}', '\u{702}')]), Keep),
        rule(lit("="), Keep),
        rule(lit("/"), Keep),
        rule_ctx(seq(vec![hthing(), lit(".")]), insentp(), SoftHyphens),
        rule(hthing(), SoftHyphens),
        rule_ctx(seq(vec![thing(), lit(".")]), insentp(), Keep),
        rule(thing(), Keep),
        rule_ctx(seq(vec![thinga(), lit(".")]), insentp(), Amp),
        rule(thinga(), Amp),
        rule_ctx(lit("'"), seq(vec![ascii_alpha(), not_set(" \t\n\r\u{A0}")]), Quotes(true)),
        rule(redaux(), Quotes(false)),
        rule(quotes(), Quotes(false)),
        rule(lits(&["<<", ">>"]), Keep),
        rule(set("+%&~^|\\", MISC_SYMBOL_RANGES), Keep),
        rule(alt(vec![lit("\u{0}"), spaces(), set("\u{200B}\u{200E}\u{200F}\u{FEFF}", &[])]), Delete),
        rule(newline(), Delete),
        rule(lit("&nbsp;"), Delete),
    ]
}

/// Runs the lexer over `text`, calling `emit` with each token's start and text.
///
/// `text` holds UTF-16 units as the jar sees them: a character above U+FFFF is two
/// units, [`HIGH_UNIT`] and [`LOW_UNIT`], which no positive class matches and every
/// negated class does, as with Java's surrogates. `display` gives, per unit, the
/// character to print (`None` for a low unit).
fn lex(text: &[char], display: &[Option<char>], emit: &mut dyn FnMut(usize, &str)) {
    let rules = rules();
    let mut pool = Vec::new();
    let mut chars = Vec::new();
    let mut pos = 0;
    let mut r1 = Vec::new();
    let mut r2 = Vec::new();
    let mut buf = String::new();
    while pos < text.len() {
        if matches!(text[pos], ' ' | '\t') {
            // Only SPACES starts with a space or tab, and it takes the whole run
            // (U+00A0 included, which LIKELYURL would otherwise accept as a start).
            pos += text[pos..].iter().take_while(|&&c| is_space(c)).count();
            continue;
        }
        if let Some(end) = plain_word(text, pos) {
            buf.clear();
            buf.extend(&text[pos..end]);
            emit(pos, &buf);
            pos = end;
            continue;
        }
        // Longest match over all rules; the earlier rule wins a tie.
        let mut best: Option<(usize, usize, Action)> = None; // (total end, token end, action)
        let first = text[pos];
        for rule in rules.iter().filter(|r| r.can_start(first)) {
            rule.re.ends(text, &[pos], &mut r1, &mut pool);
            let found = match &rule.context {
                None => r1.last().copied().filter(|&e| e > pos).map(|e| (e, e)),
                Some(context) => {
                    let mut found: Option<(usize, usize)> = None;
                    for &e1 in r1.iter().filter(|&&e| e > pos) {
                        context.ends(text, &[e1], &mut r2, &mut pool);
                        if let Some(&e2) = r2.last() {
                            // Longest total; for it, the longest r1 (JFlex's backward scan).
                            if found.is_none_or(|(t, _)| e2 >= t) {
                                found = Some((e2, e1));
                            }
                        }
                    }
                    found
                }
            };
            if let Some((total, end)) = found {
                if best.is_none_or(|(t, _, _)| total > t) {
                    best = Some((total, end, rule.action));
                }
            }
        }
        let Some((_, end, action)) = best else {
            // JFlex's `.`: an untokenizable character, deleted (untokenizable=firstDelete).
            pos += 1;
            continue;
        };
        let matched = &text[pos..end];
        // Which units the token shows and how many are consumed (pushback returns the
        // rest to the input), decided on units; the text comes from `display`.
        let (shown, consumed) = match action {
            Action::PushBack(n) => {
                let keep = matched.len().saturating_sub(n).max(1);
                (keep, keep)
            }
            Action::DoublePeriod => (matched.len(), matched.len() - 1),
            Action::Acronym => {
                let mut len = matched.len();
                while len > 0 && is_space_or_newline(matched[len - 1]) {
                    len -= 1;
                }
                // "I." before a sentence start is the letter, then a period.
                if len == 2 {
                    (1, 1)
                } else {
                    (len, len.saturating_sub(1).max(1))
                }
            }
            _ => (matched.len(), matched.len()),
        };
        chars.clear();
        chars.extend(display[pos..pos + shown].iter().flatten());
        buf.clear();
        match action {
            Action::Keep | Action::PushBack(_) | Action::DoublePeriod | Action::Acronym => {
                buf.extend(&chars)
            }
            Action::SoftHyphens => {
                buf.extend(chars.iter().filter(|&&c| c != '\u{AD}'));
                if buf.is_empty() {
                    buf.push('-');
                }
            }
            Action::Amp => push_amp_normalized(&chars, &mut buf),
            Action::Quotes(left) => latex_quotes(&chars, left, &mut buf),
            Action::Nbsp => buf.extend(chars.iter().map(|&c| if c == ' ' { '\u{A0}' } else { c })),
            Action::Phone | Action::Smiley => {
                for &c in &chars {
                    match c {
                        ' ' if action == Action::Phone => buf.push('\u{A0}'),
                        '(' => buf.push_str("-LRB-"),
                        ')' => buf.push_str("-RRB-"),
                        c => buf.push(c),
                    }
                }
            }
            Action::Replace(s) => buf.push_str(s),
            Action::Hyphens => {
                if (3..=4).contains(&matched.len()) {
                    buf.push_str("--");
                } else {
                    buf.extend(&chars);
                }
            }
            Action::Fraction => {
                for &c in &chars {
                    match c {
                        '\u{BC}' => buf.push_str("1/4"),
                        '\u{BD}' => buf.push_str("1/2"),
                        '\u{BE}' => buf.push_str("3/4"),
                        '\u{2153}' => buf.push_str("1/3"),
                        '\u{2154}' => buf.push_str("2/3"),
                        c => buf.push(c),
                    }
                }
            }
            Action::Currency => {
                for &c in &chars {
                    match c {
                        '\u{A2}' => buf.push_str("cents"),
                        '\u{A3}' => buf.push('#'),
                        '\u{80}' | '\u{A4}' | '\u{20A0}' | '\u{20AC}' => buf.push('$'),
                        c => buf.push(c),
                    }
                }
            }
            Action::Delete => {}
        }
        if action != Action::Delete {
            emit(pos, &buf);
        }
        pos += consumed;
    }
}

/// JFlex SPACE: `[ \t\u00A0\u2000-\u200A\u3000]`.
fn is_space(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{A0}' | '\u{2000}'..='\u{200A}' | '\u{3000}'
    )
}

fn is_space_or_newline(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\n' | '\u{B}' | '\u{C}' | '\r' | '\u{85}' | '\u{A0}' | '\u{2000}'
            ..='\u{200A}' | '\u{2028}' | '\u{2029}' | '\u{3000}'
    )
}

/// `(?i:&amp;)` → `&`.
fn push_amp_normalized(text: &[char], out: &mut String) {
    let mut i = 0;
    while i < text.len() {
        if i + 5 <= text.len()
            && text[i..i + 5]
                .iter()
                .zip("&amp;".chars())
                .all(|(&a, b)| a.to_ascii_lowercase() == b)
        {
            out.push('&');
            i += 5;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
}

/// PTBLexer's `latexQuotes`: straight quotes by guessed side, curly and CP1252 quotes
/// by their shape, to `` ` `` / `'` / ``` `` ``` / `''`.
fn latex_quotes(text: &[char], left: bool, out: &mut String) {
    let s: String = text.iter().collect();
    let (single, double) = if left { ("`", "``") } else { ("'", "''") };
    let s = s.replace("&apos;", single).replace("&quot;", double);
    for c in s.chars() {
        match c {
            '\'' => out.push_str(single),
            '"' => out.push_str(double),
            '\u{91}' | '\u{2018}' | '\u{201B}' | '\u{2039}' => out.push('`'),
            '\u{92}' | '\u{2019}' | '\u{203A}' => out.push('\''),
            '\u{93}' | '\u{201C}' | '\u{AB}' => out.push_str("``"),
            '\u{94}' | '\u{201D}' | '\u{BB}' => out.push_str("''"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documented_examples() {
        // metrics.md §1a, measured on the jar.
        assert_eq!(
            tokenize("A man's dog (brown) doesn't run... fast!").join(" "),
            "a man 's dog -lrb- brown -rrb- does n't run fast"
        );
        assert_eq!(
            tokenize("He said \"hello\" - at 3.5 p.m.; OK?").join(" "),
            "he said hello at 3.5 p.m. ok"
        );
        assert_eq!(tokenize("can't I'm").join(" "), "ca n't i 'm");
        assert_eq!(tokenize("50% $5").join(" "), "50 % $ 5");
        assert_eq!(
            tokenize("cat-dog Hello.World").join(" "),
            "cat-dog hello.world"
        );
        assert!(tokenize("").is_empty());
    }
}
