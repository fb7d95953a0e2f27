//! (being written: caption metrics helper A)
