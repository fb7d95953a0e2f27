//! NLTK's `PorterStemmer` in its default `NLTK_EXTENSIONS` mode (nltk 3.10.4,
//! `nltk/stem/porter.py`), ported rule for rule.
//!
//! Owns: the stemming function METEOR's stem stage uses. Must not: implement the other
//! two NLTK modes, Porter2/Snowball, or any caching (the caller caches per word).
//!
//! The port works on `char`s because NLTK works on Python `str` code points: lengths,
//! `word[-1]` and suffix slicing all count code points, and non-ASCII letters are
//! simply consonants. Some NLTK quirks are kept on purpose:
//! - the irregular-forms pool (`dying` → `die`, `skies` → `sky`, …) is looked up on
//!   the lowercased word, but the "length ≤ 2 is returned as is" test uses the length
//!   of the word *before* lowercasing;
//! - the step 1b rule list names the double-consonant rule `"*d"`, and NLTK also tests
//!   that name as a literal suffix, so `ka*ded` stems to `kad`;
//! - step 2 applies `alli → al` first and re-runs step 2 on the result.

/// Stems one word exactly as `PorterStemmer().stem(word)` does.
pub(crate) fn stem(word: &str) -> String {
    let lower = word.to_lowercase();
    if let Some(irregular) = irregular(&lower) {
        return irregular.to_string();
    }
    if word.chars().count() <= 2 {
        return lower;
    }
    let mut w: Vec<char> = lower.chars().collect();
    w = step1a(&w);
    w = step1b(&w);
    w = step1c(&w);
    w = step2(&w);
    w = step3(&w);
    w = step4(&w);
    w = step5a(&w);
    w = step5b(&w);
    w.into_iter().collect()
}

/// NLTK's `pool`: irregular forms "drawn to Martin Porter's attention over 20 years".
fn irregular(word: &str) -> Option<&'static str> {
    Some(match word {
        "sky" | "skies" => "sky",
        "dying" => "die",
        "lying" => "lie",
        "tying" => "tie",
        "news" => "news",
        "innings" | "inning" => "inning",
        "outings" | "outing" => "outing",
        "cannings" | "canning" => "canning",
        "howe" => "howe",
        "proceed" => "proceed",
        "exceed" => "exceed",
        "succeed" => "succeed",
        _ => return None,
    })
}

fn is_vowel(c: char) -> bool {
    matches!(c, 'a' | 'e' | 'i' | 'o' | 'u')
}

/// `_is_consonant`: a 'y' is a consonant when the letter before it is not one.
fn is_consonant(w: &[char], mut i: usize) -> bool {
    if is_vowel(w[i]) {
        return false;
    }
    if w[i] == 'y' {
        let mut negate = false;
        while i > 0 && w[i] == 'y' {
            negate = !negate;
            i -= 1;
        }
        // NLTK: `(word[i] not in vowels) != negate`.
        return is_vowel(w[i]) == negate;
    }
    true
}

/// `_consonant_flags`: `is_consonant` for every position in one pass.
fn consonant_flags(w: &[char]) -> Vec<bool> {
    let mut flags: Vec<bool> = Vec::with_capacity(w.len());
    for (i, &c) in w.iter().enumerate() {
        let flag = if is_vowel(c) {
            false
        } else if c == 'y' {
            i == 0 || !flags[i - 1]
        } else {
            true
        };
        flags.push(flag);
    }
    flags
}

/// `_measure`: the number of vowel→consonant transitions, Porter's `m`.
fn measure(stem: &[char]) -> usize {
    let flags = consonant_flags(stem);
    flags.windows(2).filter(|p| !p[0] && p[1]).count()
}

fn contains_vowel(stem: &[char]) -> bool {
    consonant_flags(stem).iter().any(|&c| !c)
}

/// Condition `*d`.
fn ends_double_consonant(w: &[char]) -> bool {
    let n = w.len();
    n >= 2 && w[n - 1] == w[n - 2] && is_consonant(w, n - 1)
}

/// Condition `*o`, with NLTK's extension for two-letter stems (vowel, consonant).
fn ends_cvc(w: &[char]) -> bool {
    let n = w.len();
    (n >= 3
        && is_consonant(w, n - 3)
        && !is_consonant(w, n - 2)
        && is_consonant(w, n - 1)
        && !matches!(w[n - 1], 'w' | 'x' | 'y'))
        || (n == 2 && !is_consonant(w, 0) && is_consonant(w, 1))
}

fn ends_with(w: &[char], suffix: &str) -> bool {
    let n = suffix.chars().count();
    n <= w.len() && w[w.len() - n..].iter().copied().eq(suffix.chars())
}

/// `word[:-len(suffix)] + replacement` (the caller checked the suffix).
fn replace_suffix(w: &[char], suffix: &str, replacement: &str) -> Vec<char> {
    let mut out = w[..w.len() - suffix.chars().count()].to_vec();
    out.extend(replacement.chars());
    out
}

type Cond<'a> = &'a dyn Fn(&[char]) -> bool;

/// `_apply_rule_list`: the first rule whose suffix matches decides; if its condition
/// fails the word is returned unchanged and no later rule is tried.
fn apply_rule_list(w: &[char], rules: &[(&str, &str, Option<Cond<'_>>)]) -> Vec<char> {
    for &(suffix, replacement, condition) in rules {
        if suffix == "*d" && ends_double_consonant(w) {
            let stem = &w[..w.len() - 2];
            return if condition.is_none_or(|c| c(stem)) {
                replace_suffix(stem, "", replacement)
            } else {
                w.to_vec()
            };
        }
        // Also reached for "*d" when the word does not end in a double consonant:
        // NLTK then tests "*d" as a literal suffix.
        if ends_with(w, suffix) {
            let stem = replace_suffix(w, suffix, "");
            return if condition.is_none_or(|c| c(&stem)) {
                replace_suffix(&stem, "", replacement)
            } else {
                w.to_vec()
            };
        }
    }
    w.to_vec()
}

fn positive_measure(stem: &[char]) -> bool {
    measure(stem) > 0
}

fn measure_gt_1(stem: &[char]) -> bool {
    measure(stem) > 1
}

fn step1a(w: &[char]) -> Vec<char> {
    // NLTK extension: 'flies' -> 'fli' but 'dies' -> 'die'.
    if ends_with(w, "ies") && w.len() == 4 {
        return replace_suffix(w, "ies", "ie");
    }
    apply_rule_list(
        w,
        &[
            ("sses", "ss", None),
            ("ies", "i", None),
            ("ss", "ss", None),
            ("s", "", None),
        ],
    )
}

fn step1b(w: &[char]) -> Vec<char> {
    // NLTK extension: 'spied' -> 'spi' but 'died' -> 'die'.
    if ends_with(w, "ied") {
        let replacement = if w.len() == 4 { "ie" } else { "i" };
        return replace_suffix(w, "ied", replacement);
    }
    if ends_with(w, "eed") {
        let stem = replace_suffix(w, "eed", "");
        return if measure(&stem) > 0 {
            replace_suffix(&stem, "", "ee")
        } else {
            w.to_vec()
        };
    }
    let mut intermediate = None;
    for suffix in ["ed", "ing"] {
        if ends_with(w, suffix) {
            let stem = replace_suffix(w, suffix, "");
            if contains_vowel(&stem) {
                intermediate = Some(stem);
                break;
            }
        }
    }
    let Some(stem) = intermediate else {
        return w.to_vec();
    };
    // `contains_vowel` held, so the stem is not empty.
    let last = stem.last().copied().unwrap_or_default();
    let last_str = last.to_string();
    let not_lsz = |_: &[char]| !matches!(last, 'l' | 's' | 'z');
    let m1_cvc = |s: &[char]| measure(s) == 1 && ends_cvc(s);
    apply_rule_list(
        &stem,
        &[
            ("at", "ate", None),
            ("bl", "ble", None),
            ("iz", "ize", None),
            ("*d", &last_str, Some(&not_lsz)),
            ("", "e", Some(&m1_cvc)),
        ],
    )
}

fn step1c(w: &[char]) -> Vec<char> {
    // NLTK: y -> i only after a consonant, and not when the stem is that one letter.
    let cond = |s: &[char]| s.len() > 1 && is_consonant(s, s.len() - 1);
    apply_rule_list(w, &[("y", "i", Some(&cond))])
}

fn step2(w: &[char]) -> Vec<char> {
    if ends_with(w, "alli") && positive_measure(&replace_suffix(w, "alli", "")) {
        return step2(&replace_suffix(w, "alli", "al"));
    }
    let pm: Cond<'_> = &positive_measure;
    // The 'l' of 'logi' stays with the stem for the measure, so 'geo', 'theo' work.
    let logi = |_: &[char]| w.len() >= 3 && positive_measure(&w[..w.len() - 3]);
    apply_rule_list(
        w,
        &[
            ("ational", "ate", Some(pm)),
            ("tional", "tion", Some(pm)),
            ("enci", "ence", Some(pm)),
            ("anci", "ance", Some(pm)),
            ("izer", "ize", Some(pm)),
            ("bli", "ble", Some(pm)),
            ("alli", "al", Some(pm)),
            ("entli", "ent", Some(pm)),
            ("eli", "e", Some(pm)),
            ("ousli", "ous", Some(pm)),
            ("ization", "ize", Some(pm)),
            ("ation", "ate", Some(pm)),
            ("ator", "ate", Some(pm)),
            ("alism", "al", Some(pm)),
            ("iveness", "ive", Some(pm)),
            ("fulness", "ful", Some(pm)),
            ("ousness", "ous", Some(pm)),
            ("aliti", "al", Some(pm)),
            ("iviti", "ive", Some(pm)),
            ("biliti", "ble", Some(pm)),
            ("fulli", "ful", Some(pm)),
            ("logi", "log", Some(&logi)),
        ],
    )
}

fn step3(w: &[char]) -> Vec<char> {
    let pm: Cond<'_> = &positive_measure;
    apply_rule_list(
        w,
        &[
            ("icate", "ic", Some(pm)),
            ("ative", "", Some(pm)),
            ("alize", "al", Some(pm)),
            ("iciti", "ic", Some(pm)),
            ("ical", "ic", Some(pm)),
            ("ful", "", Some(pm)),
            ("ness", "", Some(pm)),
        ],
    )
}

fn step4(w: &[char]) -> Vec<char> {
    let gt1: Cond<'_> = &measure_gt_1;
    let ion = |s: &[char]| measure(s) > 1 && matches!(s.last(), Some('s' | 't'));
    apply_rule_list(
        w,
        &[
            ("al", "", Some(gt1)),
            ("ance", "", Some(gt1)),
            ("ence", "", Some(gt1)),
            ("er", "", Some(gt1)),
            ("ic", "", Some(gt1)),
            ("able", "", Some(gt1)),
            ("ible", "", Some(gt1)),
            ("ant", "", Some(gt1)),
            ("ement", "", Some(gt1)),
            ("ment", "", Some(gt1)),
            ("ent", "", Some(gt1)),
            ("ion", "", Some(&ion)),
            ("ou", "", Some(gt1)),
            ("ism", "", Some(gt1)),
            ("ate", "", Some(gt1)),
            ("iti", "", Some(gt1)),
            ("ous", "", Some(gt1)),
            ("ive", "", Some(gt1)),
            ("ize", "", Some(gt1)),
        ],
    )
}

fn step5a(w: &[char]) -> Vec<char> {
    // Both rules share the suffix 'e', so unlike the rule lists the second condition is
    // tried when the first fails.
    if ends_with(w, "e") {
        let stem = &w[..w.len() - 1];
        let m = measure(stem);
        if m > 1 || (m == 1 && !ends_cvc(stem)) {
            return stem.to_vec();
        }
    }
    w.to_vec()
}

fn step5b(w: &[char]) -> Vec<char> {
    // The measure is taken on the word less one letter, not on the stem less 'll'.
    let cond = |_: &[char]| measure(&w[..w.len() - 1]) > 1;
    apply_rule_list(w, &[("ll", "l", Some(&cond))])
}

#[cfg(test)]
mod tests {
    use super::stem;

    #[test]
    fn paper_and_nltk_examples() {
        for (word, expected) in [
            ("caresses", "caress"),
            ("ponies", "poni"),
            ("dies", "die"),
            ("died", "die"),
            ("spied", "spi"),
            ("agreed", "agre"),
            ("feed", "feed"),
            ("hopping", "hop"),
            ("filing", "file"),
            ("happy", "happi"),
            ("enjoy", "enjoy"),
            ("running", "run"),
            ("ran", "ran"),
            ("dying", "die"),
            ("generously", "gener"),
            ("radicalli", "radic"),
            ("ka*ded", "kad"),
            ("yyyy", "yyyi"),
            ("Running", "run"),
            ("is", "is"),
            ("", ""),
        ] {
            assert_eq!(stem(word), expected, "{word}");
        }
    }
}
