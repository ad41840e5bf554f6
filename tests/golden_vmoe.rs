//! Golden tests: vmoe parameter trees and config.json files (random weights) converted by
//! the real `wgvision convert --from vmoe` and run by the real `wgvision run`, against the
//! float64 reference of vmoe's routing semantics (weights-tools/python/vmoe_reference.py).
//! f32: relative L2 <= 1e-4.
mod common;
use common::*;

#[test]
fn vmoe_f32_matches_reference() {
    let cases = cases("vmoe");
    assert!(cases.len() >= 5);
    for c in &cases {
        let e = golden_case("vmoe", &c.name, &convert_args("vmoe", c), "f32", &c.out_shape);
        eprintln!("{:<40} f32 rel-L2 {e:.2e}", c.name);
        assert!(e <= 1e-4, "{}: relative L2 error {e:e} > 1e-4", c.name);
    }
}
