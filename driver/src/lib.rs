//! Storage drivers over strata-fs, kernel overlayfs and plain copies.
//!
//! Not built yet: this crate exists so the dependency direction of DESIGN.md
//! (`cli → store → driver → fs`) is in place from the start.
