//! Content-addressed image store: blobs, layers, images, references, archives.
//!
//! Not built yet: the crate exists so the workspace has the layout of DESIGN.md.
