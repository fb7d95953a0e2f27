//! (being written: METEOR helper B)
