//! Compile-time behaviour of `network!`: every rejection has a case under
//! `tests/ui/<family>/` with the exact diagnostic in its `.stderr`, and the
//! cases under `tests/pass/` compile and run.
//!
//! Refresh the snapshots after an intended change with
//! `TRYBUILD=overwrite cargo test --test ui`.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*/*.rs");
    t.pass("tests/pass/*.rs");
}
