//! The run-input loader (`wgvision run --input`): safetensors bytes widened to f32, strictly
//! (`parse`, every dtype must be readable) and leniently (`parse_lenient`, other dtypes
//! skipped). Any bytes must give tensors or an error, never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wgvision::weights::st;

fuzz_target!(|data: &[u8]| {
    for result in [st::parse_lenient(data, "fuzz.safetensors"), st::parse(data, "fuzz.safetensors")] {
        if let Ok((_, tensors)) = result {
            for t in &tensors {
                // What `run` relies on: the data matches the shape.
                assert_eq!(t.shape.iter().product::<usize>(), t.data.len(), "tensor {}", t.name);
            }
        }
    }
});
