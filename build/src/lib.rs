//! Dockerfile builds (parser, expansion, context rules).
