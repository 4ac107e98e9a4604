//! `faas`: the developer's front door (placeholder until `faas up` lands).
fn main() {}
