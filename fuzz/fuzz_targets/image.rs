//! Image decoding (`wgvision run --image`): PNG or JPEG bytes to RGB, bounded in size and
//! refusing truncated JPEGs. Any bytes must give an image or an error, never a panic or
//! an allocation past the decoder's limits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use wgvision::image_input::{decode_rgb_bytes, MAX_IMAGE_PIXELS, MAX_IMAGE_SIDE};

fuzz_target!(|data: &[u8]| {
    if let Ok(img) = decode_rgb_bytes(data, "fuzz.img") {
        let (w, h) = img.dimensions();
        assert!(w <= MAX_IMAGE_SIDE && h <= MAX_IMAGE_SIDE && w as u64 * h as u64 <= MAX_IMAGE_PIXELS);
    }
});
