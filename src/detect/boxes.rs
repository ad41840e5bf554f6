//! Box maths for detection post-processing: (cx, cy, w, h) -> corners, IoU,
//! generalized IoU, and greedy per-label non-maximum suppression.

/// One detected object: the best-scoring query for a patch and its box.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Detection {
    /// Index of the query that scored highest.
    pub query: usize,
    pub label: String,
    pub score: f32,
    /// [x0, y0, x1, y1] in pixels of the original image.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
}

/// A (cx, cy, w, h) box -> [x0, y0, x1, y1], each axis scaled by (sx, sy).
pub(crate) fn corners(b: &[f32], (sx, sy): (f32, f32)) -> [f32; 4] {
    [(b[0] - b[2] / 2.0) * sx, (b[1] - b[3] / 2.0) * sy, (b[0] + b[2] / 2.0) * sx, (b[1] + b[3] / 2.0) * sy]
}

/// Intersection over union of two corner boxes.
pub(crate) fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = iw * ih;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    inter / (area(a) + area(b) - inter).max(1e-12)
}

/// Generalized IoU: IoU minus the enclosing box's share not covered by the union.
pub(crate) fn generalized_iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let union = area(a) + area(b) - iw * ih;
    let enclosing = (a[2].max(b[2]) - a[0].min(b[0])) * (a[3].max(b[3]) - a[1].min(b[1]));
    iou(a, b) - (enclosing - union) / enclosing.max(1e-12)
}

/// Greedy per-label NMS, highest score first.
pub fn nms(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::new();
    for d in dets {
        if keep.iter().all(|k| k.query != d.query || iou(&k.bbox, &d.bbox) <= iou_threshold) {
            keep.push(d);
        }
    }
    keep
}
