//! The way back in.
