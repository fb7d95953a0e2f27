//! Caption metrics as the COCO caption protocol (pycocoevalcap) and NLTK define them,
//! and mention accuracy of captions of the synthetic world (`mentions`).
//!
//! Pure code: token lists and strings in, numbers out. Parity with the Python
//! references is tested against committed goldens (`tests/fixtures/metrics/`).

pub mod bleu;
pub mod cider;
pub mod corpus;
pub mod mentions;
pub mod meteor;
pub mod ptb;
pub mod rouge;
pub mod wordnet;
