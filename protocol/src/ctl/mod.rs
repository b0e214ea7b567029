//! The switchd control protocol (in progress).
