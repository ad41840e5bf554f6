//! Open-vocabulary detection with an OWL-ViT / OWLv2 model file: tokenize the text
//! queries, preprocess the image as the transformers processor does, run, and
//! post-process as `post_process_object_detection` does (score = sigmoid of the best
//! query's logit, label = that query, boxes to pixel corners of the original image),
//! then per-label non-maximum suppression.
mod boxes;
mod detector;
mod draw;
mod preprocess;

pub use boxes::{nms, Detection};
pub use detector::{DetectOptions, Detector};
pub use draw::draw;
/// Decode an image file to RGB (the one decoder, with its size limits: `image_input`).
pub use crate::image_input::decode_rgb as open_rgb;
pub use preprocess::owl_pixels;
