// Dispatches larger than 65535 workgroups are split over x and y by the executor;
// every shader recovers its linear workgroup index with this.
fn linear_workgroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return wid.x + wid.y * nwg.x;
}
