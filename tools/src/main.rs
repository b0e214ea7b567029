//! weftctl (in progress).
fn main() {}
