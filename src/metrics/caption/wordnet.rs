//! Princeton WordNet 3.0 read straight from its dict files, as NLTK 3.10.4's
//! `WordNetCorpusReader` sees them, for METEOR's synonym stage.
//!
//! Owns: loading `index.{noun,verb,adj,adv}`, `data.*` (only each synset's type,
//! offset and lemma names) and `{noun,verb,adj,adv}.exc`; NLTK's `_morphy` (exception
//! list, else one pass of the detachment rules, keeping the forms the index holds);
//! NLTK's `synsets(word)` (lowercase, then `_morphy` for n, v, a, r in that order);
//! and METEOR's synonym set. Must not: follow pointers (hypernyms, similarity), read
//! glosses, or download anything. It is the one part of `metrics` that touches the
//! file system, and only in [`WordNet::open`]: everything is parsed there (about
//! 28 MB of text, about 0.1 s), so lookups afterwards cannot fail.
//!
//! The files come from the Debian package `wordnet-base` (`/usr/share/wordnet`). NLTK
//! itself additionally needs `lexnames` and `index.sense` (`wordnet-sense-index`), but
//! this reader does not: it reads neither.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Where Debian's `wordnet-base` installs the dict files.
pub const DEFAULT_DIR: &str = "/usr/share/wordnet";

/// A WordNet part of speech, as NLTK's `POS_LIST` orders them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pos {
    /// `n`, `index.noun` / `data.noun`.
    Noun,
    /// `v`.
    Verb,
    /// `a`; satellites (`s`) live in the same files.
    Adj,
    /// `r`.
    Adv,
}

impl Pos {
    /// NLTK's `POS_LIST`: the order `synsets()` tries the parts of speech in.
    pub const ALL: [Pos; 4] = [Pos::Noun, Pos::Verb, Pos::Adj, Pos::Adv];

    /// The one-letter tag NLTK uses.
    pub fn tag(self) -> char {
        match self {
            Pos::Noun => 'n',
            Pos::Verb => 'v',
            Pos::Adj => 'a',
            Pos::Adv => 'r',
        }
    }

    /// The file-name suffix (`index.noun`, `noun.exc`).
    fn file(self) -> &'static str {
        match self {
            Pos::Noun => "noun",
            Pos::Verb => "verb",
            Pos::Adj => "adj",
            Pos::Adv => "adv",
        }
    }

    fn from_tag(tag: &str) -> Option<Pos> {
        match tag {
            "n" => Some(Pos::Noun),
            "v" => Some(Pos::Verb),
            "a" => Some(Pos::Adj),
            "r" => Some(Pos::Adv),
            _ => None,
        }
    }

    /// NLTK's `MORPHOLOGICAL_SUBSTITUTIONS`, in its order (the order of `_morphy`'s
    /// results depends on it).
    fn substitutions(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Pos::Noun => &[
                ("s", ""),
                ("ses", "s"),
                ("ves", "f"),
                ("xes", "x"),
                ("zes", "z"),
                ("ches", "ch"),
                ("shes", "sh"),
                ("men", "man"),
                ("ies", "y"),
            ],
            Pos::Verb => &[
                ("s", ""),
                ("ies", "y"),
                ("es", "e"),
                ("es", ""),
                ("ed", "e"),
                ("ed", ""),
                ("ing", "e"),
                ("ing", ""),
            ],
            Pos::Adj => &[("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
            Pos::Adv => &[],
        }
    }
}

/// One synset as METEOR needs it.
#[derive(Clone, Copy, Debug)]
pub struct Synset<'a> {
    /// The synset type from the data line: `n`, `v`, `a`, `s` (satellite) or `r`,
    /// what NLTK's `Synset.pos()` returns.
    pub pos: char,
    /// The byte offset in `data.<pos>`, NLTK's `Synset.offset()`.
    pub offset: u32,
    /// The lemma names in file order, with their case and without adjective markers
    /// such as `(p)`: NLTK's `Synset.lemma_names()`.
    pub lemma_names: &'a [Box<str>],
}

/// A synset's entry in the table built from the data files.
struct SynsetEntry {
    pos: u8,
    offset: u32,
    /// Range into `WordNet::names`.
    names: (u32, u32),
}

/// WordNet loaded in memory: see the module docs.
pub struct WordNet {
    dir: PathBuf,
    /// Lemma → per POS (in [`Pos::ALL`] order) a range into `index_synsets`; an empty
    /// range means the lemma is not in that POS's index.
    index: HashMap<Box<str>, [(u32, u32); 4]>,
    /// Synset numbers (into `synsets`) in index-file order.
    index_synsets: Vec<u32>,
    synsets: Vec<SynsetEntry>,
    names: Vec<Box<str>>,
    /// Per POS: inflected form → base forms (`*.exc`).
    exceptions: [HashMap<Box<str>, Vec<Box<str>>>; 4],
}

impl std::fmt::Debug for WordNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WordNet")
            .field("dir", &self.dir)
            .field("lemmas", &self.index.len())
            .field("synsets", &self.synsets.len())
            .finish()
    }
}

fn invalid(path: &Path, line: usize, message: impl std::fmt::Display) -> Error {
    Error::io(
        path,
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("line {line}: {message}"),
        ),
    )
}

/// NLTK's `re.match(r"(.*?)(\([^()]*\))?$", name)`: drops a trailing syntactic marker
/// such as `(p)`, `(a)` or `(ip)` from an adjective lemma.
fn strip_marker(name: &str) -> &str {
    if let Some(body) = name.strip_suffix(')') {
        if let Some(open) = body.rfind('(') {
            if !body[open + 1..].contains(')') {
                return &name[..open];
            }
        }
    }
    name
}

impl WordNet {
    /// Loads WordNet from [`DEFAULT_DIR`], or from `$WNSEARCHDIR` when set (WordNet's
    /// own variable for its dict folder).
    pub fn open_default() -> Result<WordNet> {
        match std::env::var_os("WNSEARCHDIR") {
            Some(dir) if !dir.is_empty() => WordNet::open(PathBuf::from(dir)),
            _ => WordNet::open(DEFAULT_DIR),
        }
    }

    /// Loads the dict files in `dir` (`data.*`, `index.*`, `*.exc`).
    pub fn open(dir: impl AsRef<Path>) -> Result<WordNet> {
        let dir = dir.as_ref().to_path_buf();
        for pos in Pos::ALL {
            for name in [
                format!("data.{}", pos.file()),
                format!("index.{}", pos.file()),
            ] {
                if !dir.join(&name).is_file() {
                    return Err(Error::Config(format!(
                        "WordNet 3.0 not found: {} has no {name}. Install the Debian package \
                         wordnet-base (`apt-get install wordnet-base`; NLTK-based goldens also \
                         need wordnet-sense-index), or pass the folder holding data.*, index.* \
                         and *.exc",
                        dir.display()
                    )));
                }
            }
        }
        let mut wn = WordNet {
            dir,
            index: HashMap::with_capacity(160_000),
            index_synsets: Vec::with_capacity(210_000),
            synsets: Vec::with_capacity(120_000),
            names: Vec::with_capacity(210_000),
            exceptions: Default::default(),
        };
        // Per POS, the synset numbers of its data file are contiguous and sorted by
        // offset (the file is written in offset order), so the index can resolve its
        // offsets by binary search.
        let mut spans = [(0usize, 0usize); 4];
        for (k, pos) in Pos::ALL.into_iter().enumerate() {
            let start = wn.synsets.len();
            wn.load_data(pos)?;
            spans[k] = (start, wn.synsets.len());
        }
        for (k, pos) in Pos::ALL.into_iter().enumerate() {
            wn.load_index(pos, &spans)?;
            wn.exceptions[k] = wn.load_exceptions(pos)?;
        }
        Ok(wn)
    }

    /// The folder the files were read from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn read(&self, name: &str) -> Result<(PathBuf, String)> {
        let path = self.dir.join(name);
        let bytes = std::fs::read(&path).map_err(|e| Error::io(&path, e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::io(
                &path,
                io::Error::new(io::ErrorKind::InvalidData, e.utf8_error()),
            )
        })?;
        Ok((path, text))
    }

    /// `data.<pos>`: `offset lex_filenum ss_type w_cnt(hex) {word lex_id}… | gloss`.
    fn load_data(&mut self, pos: Pos) -> Result<()> {
        let (path, text) = self.read(&format!("data.{}", pos.file()))?;
        let mut at = 0usize;
        for (n, line) in text.split_inclusive('\n').enumerate() {
            let start = at;
            at += line.len();
            // The licence header lines start with two spaces; NLTK skips them too.
            if line.starts_with(' ') || line.trim().is_empty() {
                continue;
            }
            let mut fields = line.split_ascii_whitespace();
            let mut next = |what: &str| {
                fields
                    .next()
                    .ok_or_else(|| invalid(&path, n + 1, format!("missing {what}")))
            };
            let offset_field = next("offset")?;
            let offset: u32 = offset_field
                .parse()
                .map_err(|_| invalid(&path, n + 1, format!("bad offset {offset_field:?}")))?;
            // NLTK seeks to the index's offset and rejects a line whose own offset
            // differs; checking every line here makes later lookups infallible.
            if offset as usize != start {
                return Err(invalid(
                    &path,
                    n + 1,
                    format!("offset {offset} but the line starts at byte {start}"),
                ));
            }
            next("lex_filenum")?;
            let ss_type = next("ss_type")?;
            let ss_type = match ss_type {
                "n" | "v" | "a" | "s" | "r" => ss_type.as_bytes()[0],
                other => return Err(invalid(&path, n + 1, format!("bad ss_type {other:?}"))),
            };
            let count_field = next("w_cnt")?;
            let count = u32::from_str_radix(count_field, 16)
                .map_err(|_| invalid(&path, n + 1, format!("bad w_cnt {count_field:?}")))?;
            let first = self.names.len() as u32;
            for _ in 0..count {
                let name = next("lemma")?;
                next("lex_id")?;
                self.names.push(strip_marker(name).into());
            }
            self.synsets.push(SynsetEntry {
                pos: ss_type,
                offset,
                names: (first, self.names.len() as u32),
            });
        }
        Ok(())
    }

    /// `index.<pos>`: `lemma pos synset_cnt p_cnt {ptr}… sense_cnt tagsense_cnt {offset}…`.
    fn load_index(&mut self, file_pos: Pos, spans: &[(usize, usize); 4]) -> Result<()> {
        let (path, text) = self.read(&format!("index.{}", file_pos.file()))?;
        for (n, line) in text.lines().enumerate() {
            if line.starts_with(' ') || line.trim().is_empty() {
                continue;
            }
            let bad = |what: &str| invalid(&path, n + 1, what);
            let mut fields = line.split_ascii_whitespace();
            let mut next = |what: &str| fields.next().ok_or_else(|| bad(what));
            let lemma = next("lemma")?;
            let pos_field = next("pos")?;
            // NLTK keys the entry by the line's POS and reads that POS's data file.
            let pos = Pos::from_tag(pos_field).ok_or_else(|| bad("bad pos"))?;
            let k = pos as usize;
            let count: usize = next("synset_cnt")?
                .parse()
                .map_err(|_| bad("bad synset_cnt"))?;
            let pointers: usize = next("p_cnt")?.parse().map_err(|_| bad("bad p_cnt"))?;
            for _ in 0..pointers {
                next("pointer")?;
            }
            let senses: usize = next("sense_cnt")?
                .parse()
                .map_err(|_| bad("bad sense_cnt"))?;
            if count == 0 || senses != count {
                return Err(bad("synset_cnt is 0 or differs from sense_cnt"));
            }
            next("tagsense_cnt")?;
            let (lo, hi) = spans[k];
            let table = &self.synsets[lo..hi];
            let first = self.index_synsets.len() as u32;
            for _ in 0..count {
                let field = next("offset")?;
                let offset: u32 = field.parse().map_err(|_| bad("bad offset"))?;
                let found = table
                    .binary_search_by_key(&offset, |s| s.offset)
                    .map_err(|_| {
                        bad(&format!(
                            "offset {field} is not a synset in data.{}",
                            pos.file()
                        ))
                    })?;
                self.index_synsets.push((lo + found) as u32);
            }
            let entry = self.index.entry(lemma.into()).or_insert([(0, 0); 4]);
            entry[k] = (first, self.index_synsets.len() as u32);
        }
        Ok(())
    }

    /// `<pos>.exc`: `inflected base…`; a repeated key keeps its last line, as NLTK's
    /// dict assignment does.
    fn load_exceptions(&self, pos: Pos) -> Result<HashMap<Box<str>, Vec<Box<str>>>> {
        let (_, text) = self.read(&format!("{}.exc", pos.file()))?;
        let mut map = HashMap::new();
        for line in text.lines() {
            let mut terms = line.split_ascii_whitespace();
            if let Some(form) = terms.next() {
                map.insert(form.into(), terms.map(Box::from).collect());
            }
        }
        Ok(map)
    }

    fn index_range(&self, lemma: &str, pos: Pos) -> &[u32] {
        match self.index.get(lemma) {
            Some(ranges) => {
                let (lo, hi) = ranges[pos as usize];
                &self.index_synsets[lo as usize..hi as usize]
            }
            None => &[],
        }
    }

    /// NLTK's `_morphy(form, pos)` with exceptions checked: the form itself and its
    /// exception-list bases (or, when it has none, one pass of the detachment rules),
    /// in that order, keeping those the POS's index holds, without repeats. `form` is
    /// used as given (NLTK's `synsets` lowercases before calling it).
    pub fn morphy(&self, form: &str, pos: Pos) -> Vec<String> {
        let candidates: Vec<String> = match self.exceptions[pos as usize].get(form) {
            Some(bases) => bases.iter().map(|b| b.to_string()).collect(),
            None => pos
                .substitutions()
                .iter()
                .filter_map(|(old, new)| form.strip_suffix(old).map(|s| format!("{s}{new}")))
                .collect(),
        };
        let mut out: Vec<String> = Vec::new();
        for candidate in std::iter::once(form.to_string()).chain(candidates) {
            if !self.index_range(&candidate, pos).is_empty() && !out.contains(&candidate) {
                out.push(candidate);
            }
        }
        out
    }

    /// NLTK's `wordnet.synsets(word)`: for each POS in [`Pos::ALL`] order, for each
    /// base form `morphy` finds for the lowercased word, that form's synsets in index
    /// order. A synset reached through two forms is listed twice, as in NLTK.
    pub fn synsets(&self, word: &str) -> Vec<Synset<'_>> {
        let lemma = word.to_lowercase();
        let mut out = Vec::new();
        for pos in Pos::ALL {
            for form in self.morphy(&lemma, pos) {
                for &id in self.index_range(&form, pos) {
                    let entry = &self.synsets[id as usize];
                    out.push(Synset {
                        pos: char::from(entry.pos),
                        offset: entry.offset,
                        lemma_names: &self.names[entry.names.0 as usize..entry.names.1 as usize],
                    });
                }
            }
        }
        out
    }

    /// METEOR's synonym set for a word (`meteor_score._enum_wordnetsyn_match`): the
    /// lemma names of all its synsets that contain no `_`, plus the word itself;
    /// sorted, without repeats. Lemma names keep their case (`Canis`), so the caller's
    /// comparison with lowercased tokens decides whether they can ever match.
    pub fn synonyms(&self, word: &str) -> Vec<String> {
        let mut out: Vec<String> = self
            .synsets(word)
            .iter()
            .flat_map(|s| s.lemma_names.iter())
            .filter(|name| !name.contains('_'))
            .map(|name| name.to_string())
            .collect();
        out.push(word.to_string());
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::strip_marker;

    #[test]
    fn markers_are_stripped_like_nltk() {
        assert_eq!(strip_marker("ready_to_hand(p)"), "ready_to_hand");
        assert_eq!(strip_marker("galore(ip)"), "galore");
        assert_eq!(strip_marker("dog"), "dog");
        assert_eq!(strip_marker("a(b)c"), "a(b)c");
        assert_eq!(strip_marker("a(b)(c)"), "a(b)");
        assert_eq!(strip_marker("a(b))"), "a(b))");
        assert_eq!(strip_marker("()"), "");
    }

    #[test]
    fn a_missing_folder_names_the_path_and_the_package() {
        let err = super::WordNet::open("/nonexistent/wordnet")
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/wordnet"), "{err}");
        assert!(err.contains("wordnet-base"), "{err}");
    }
}
