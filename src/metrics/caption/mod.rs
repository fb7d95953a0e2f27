//! Caption metrics as the COCO caption protocol (pycocoevalcap) and NLTK define them.
//!
//! Pure code: token lists and strings in, numbers out. Parity with the Python
//! references is tested against committed goldens (`tests/fixtures/metrics/`).

pub mod bleu;
pub mod cider;
pub mod corpus;
pub mod meteor;
pub mod ptb;
pub mod rouge;
pub mod wordnet;
