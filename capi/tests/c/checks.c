/* The C API's contract from C: error paths give their status and a message (null
 * pointers, missing files, files that are no model, bad sizes, too-small buffers, bad
 * UTF-8, the wrong kind of model), nothing is written on failure, and detection on
 * pixels in memory equals detection on the file. Run by tests/c_example.rs:
 *
 *   checks VIT_MODEL OWL_MODEL IMAGE.png IMAGE.rgb WIDTH HEIGHT
 *
 * (IMAGE.rgb: the PNG's pixels, 8-bit RGB rows.) Prints "all N checks ok" and exits 0,
 * or names each failed check on stderr and exits 1. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wgvision.h"

static int checks = 0, failures = 0;

static void check(int line, int ok, const char *what) {
    checks++;
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL line %d: %s\n", line, what);
    }
}
#define CHECK(cond) check(__LINE__, (cond) != 0, #cond)

/* A call's status and its message (read first: any later call replaces it). */
static void expect(int line, WgvStatus got, WgvStatus want, const char *needle) {
    const char *msg = wgv_last_error();
    checks++;
    int ok = got == want && msg != NULL && (needle == NULL ? msg[0] == '\0' : strstr(msg, needle) != NULL);
    if (!ok) {
        failures++;
        fprintf(stderr, "FAIL line %d: got %s \"%s\", want %s with \"%s\"\n", line, wgv_status_name(got), msg ? msg : "(null)",
                wgv_status_name(want), needle ? needle : "");
    }
}
#define EXPECT(call, want, needle) expect(__LINE__, (call), (want), (needle))
#define EXPECT_OK(call) expect(__LINE__, (call), WGV_STATUS_OK, NULL)
/* The message of a call that returned NULL. */
#define EXPECT_MSG(needle) expect(__LINE__, WGV_STATUS_INVALID_ARGUMENT, WGV_STATUS_INVALID_ARGUMENT, (needle))

/* Field by field: the struct has padding, which memcmp would compare too. */
static int same_detections(const WgvDetection *a, const WgvDetection *b, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (a[i].query != b[i].query || a[i].score != b[i].score) return 0;
        for (int k = 0; k < 4; k++)
            if (a[i].bbox[k] != b[i].bbox[k]) return 0;
    }
    return 1;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = buf ? fread(buf, 1, (size_t)n, f) : 0;
    fclose(f);
    return buf;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s VIT_MODEL OWL_MODEL IMAGE.png IMAGE.rgb WIDTH HEIGHT\n", argv[0]);
        return 2;
    }
    const char *vit_path = argv[1], *owl_path = argv[2], *png = argv[3];
    unsigned width = (unsigned)atoi(argv[5]), height = (unsigned)atoi(argv[6]);
    const char *missing = "/nonexistent-wgvision-dir/model.safetensors";

    /* Library */
    CHECK(strlen(wgv_version()) > 0);
    CHECK(strcmp(wgv_status_name(WGV_STATUS_OK), "WGV_STATUS_OK") == 0);
    CHECK(strcmp(wgv_status_name(WGV_STATUS_BUFFER_TOO_SMALL), "WGV_STATUS_BUFFER_TOO_SMALL") == 0);
    CHECK(strcmp(wgv_status_name(99), "WGV_STATUS_UNKNOWN") == 0);
    CHECK(wgv_last_error() != NULL && wgv_last_error()[0] == '\0');

    /* GPU */
    WgvGpu *gpu = (WgvGpu *)1;
    EXPECT(wgv_gpu_create("no-such-backend", &gpu), WGV_STATUS_INVALID_ARGUMENT, "unknown backend");
    CHECK(gpu == NULL);
    EXPECT(wgv_gpu_create("vulkan\xff", &gpu), WGV_STATUS_INVALID_ARGUMENT, "UTF-8");
    EXPECT(wgv_gpu_create(NULL, NULL), WGV_STATUS_INVALID_ARGUMENT, "out is NULL");
    EXPECT_OK(wgv_gpu_create(NULL, &gpu));
    CHECK(gpu != NULL && strlen(wgv_gpu_name(gpu)) > 0);
    CHECK(wgv_gpu_name(NULL) == NULL);
    wgv_gpu_free(NULL);

    /* Loading */
    WgvModel *vit = (WgvModel *)1;
    EXPECT(wgv_model_load(gpu, NULL, &vit), WGV_STATUS_INVALID_ARGUMENT, "path is NULL");
    CHECK(vit == NULL);
    EXPECT(wgv_model_load(gpu, "", &vit), WGV_STATUS_INVALID_ARGUMENT, "path is empty");
    EXPECT(wgv_model_load(NULL, vit_path, &vit), WGV_STATUS_INVALID_ARGUMENT, "gpu is NULL");
    EXPECT(wgv_model_load(gpu, vit_path, NULL), WGV_STATUS_INVALID_ARGUMENT, "out is NULL");
    EXPECT(wgv_model_load(gpu, missing, &vit), WGV_STATUS_IO, missing);
    CHECK(vit == NULL);
    EXPECT(wgv_model_load(gpu, png, &vit), WGV_STATUS_MODEL, png);
    EXPECT_OK(wgv_model_load(gpu, vit_path, &vit));
    CHECK(vit != NULL);

    /* Model info */
    size_t c = 0, h = 0, w = 0, classes = 0, outputs = 0, min_batch = 0, ndim = 0, dims[4] = {0};
    bool is_det = true;
    EXPECT_OK(wgv_model_input_shape(vit, &c, &h, &w));
    CHECK(c == 3 && h > 0 && w > 0);
    EXPECT_OK(wgv_model_input_shape(vit, NULL, NULL, &w));
    EXPECT(wgv_model_input_shape(NULL, &c, &h, &w), WGV_STATUS_INVALID_ARGUMENT, "model is NULL");
    EXPECT_OK(wgv_model_num_classes(vit, &classes));
    CHECK(classes == 10);
    EXPECT(wgv_model_num_classes(vit, NULL), WGV_STATUS_INVALID_ARGUMENT, "out is NULL");
    EXPECT_OK(wgv_model_is_detector(vit, &is_det));
    CHECK(!is_det);
    EXPECT_OK(wgv_model_min_batch(vit, &min_batch));
    CHECK(min_batch == 1);
    EXPECT_OK(wgv_model_output_count(vit, &outputs));
    CHECK(outputs >= 1);
    CHECK(strcmp(wgv_model_output_name(vit, 0), "logits") == 0);
    CHECK(wgv_model_output_name(vit, 99) == NULL);
    EXPECT_MSG("out of range");
    CHECK(wgv_model_class_name(vit, 0) != NULL && strcmp(wgv_model_class_name(vit, 0), "class zero") == 0);
    CHECK(wgv_model_class_name(vit, classes) == NULL);
    EXPECT_MSG("out of range");
    CHECK(wgv_model_name(NULL) == NULL);
    EXPECT(wgv_model_output_shape(vit, 0, 2, dims, 1, &ndim), WGV_STATUS_BUFFER_TOO_SMALL, "rank 2");
    CHECK(ndim == 2);
    EXPECT_OK(wgv_model_output_shape(vit, 0, 2, dims, 4, &ndim));
    CHECK(ndim == 2 && dims[0] == 2 && dims[1] == classes);
    size_t len = 0;
    EXPECT_OK(wgv_model_output_len(vit, 0, 3, &len));
    CHECK(len == 3 * classes);

    /* Image preprocessing */
    size_t per_image = c * h * w, got = 0;
    float *pixels = calloc(2 * per_image, sizeof(float));
    EXPECT(wgv_model_load_image(vit, missing, pixels, per_image, &got), WGV_STATUS_IO, missing);
    EXPECT(wgv_model_load_image(vit, png, pixels, per_image - 1, &got), WGV_STATUS_BUFFER_TOO_SMALL, "one image");
    CHECK(got == per_image);
    EXPECT(wgv_model_load_image(vit, vit_path, pixels, per_image, &got), WGV_STATUS_INPUT, vit_path);
    EXPECT_OK(wgv_model_load_image(vit, png, pixels, per_image, &got));
    EXPECT_OK(wgv_model_load_image(vit, png, pixels + per_image, per_image, NULL));

    /* Runs: sizes checked before anything runs or is written. */
    float out[64];
    for (int i = 0; i < 64; i++) out[i] = -12345.0f;
    size_t needed = 0;
    EXPECT(wgv_model_run(vit, pixels, 2 * per_image - 1, 2, out, 64, &needed), WGV_STATUS_INVALID_ARGUMENT, "pixels_len");
    EXPECT(wgv_model_run(vit, pixels, 0, 0, out, 64, &needed), WGV_STATUS_INVALID_ARGUMENT, "batch is 0");
    EXPECT(wgv_model_run(vit, NULL, 2 * per_image, 2, out, 64, &needed), WGV_STATUS_INVALID_ARGUMENT, "pixels is NULL");
    EXPECT(wgv_model_run(vit, pixels, 2 * per_image, 2, NULL, 64, &needed), WGV_STATUS_INVALID_ARGUMENT, "out is NULL");
    EXPECT(wgv_model_run(NULL, pixels, 2 * per_image, 2, out, 64, &needed), WGV_STATUS_INVALID_ARGUMENT, "model is NULL");
    EXPECT(wgv_model_run(vit, pixels, 2 * per_image, 2, out, 3, &needed), WGV_STATUS_BUFFER_TOO_SMALL, "needs 20 floats");
    CHECK(needed == 2 * classes);
    CHECK(out[0] == -12345.0f && out[2] == -12345.0f);
    needed = 0;
    EXPECT(wgv_model_run(vit, pixels, 2 * per_image, 2, NULL, 0, &needed), WGV_STATUS_BUFFER_TOO_SMALL, "needs");
    CHECK(needed == 2 * classes);
    EXPECT_OK(wgv_model_run(vit, pixels, 2 * per_image, 2, out, 64, &needed));
    CHECK(needed == 2 * classes && out[needed] == -12345.0f);
    /* Both images are the same file: the same logits. */
    int same = 1;
    for (size_t k = 0; k < classes; k++) same &= fabsf(out[k] - out[classes + k]) <= 1e-5f * (1.0f + fabsf(out[k]));
    CHECK(same);
    /* All outputs at once, the same values. */
    float all[64];
    WgvOutput outs[2] = {{all, 64, 0}, {NULL, 0, 0}};
    EXPECT(wgv_model_run_outputs(vit, pixels, 2 * per_image, 2, outs, outputs + 1), WGV_STATUS_INVALID_ARGUMENT, "outputs");
    EXPECT_OK(wgv_model_run_outputs(vit, pixels, 2 * per_image, 2, outs, 1));
    CHECK(outs[0].len == 2 * classes && memcmp(all, out, outs[0].len * sizeof(float)) == 0);
    EXPECT(wgv_model_run_outputs(vit, pixels, 2 * per_image, 2, NULL, 1), WGV_STATUS_INVALID_ARGUMENT, "outputs is NULL");

    /* Detection needs a detector model. */
    WgvDetector *det = (WgvDetector *)1;
    EXPECT(wgv_detector_create(vit, NULL, &det), WGV_STATUS_MODEL, "not a detector");
    CHECK(det == NULL);
    WgvModel *owl = NULL;
    EXPECT_OK(wgv_model_load(gpu, owl_path, &owl));
    EXPECT_OK(wgv_model_is_detector(owl, &is_det));
    CHECK(is_det);
    EXPECT(wgv_model_run(owl, pixels, per_image, 1, out, 64, &needed), WGV_STATUS_MODEL, "detector");
    EXPECT(wgv_detector_create(owl, missing, &det), WGV_STATUS_IO, missing);
    EXPECT_OK(wgv_detector_create(owl, NULL, &det));
    /* The detector keeps its model alive. */
    wgv_model_free(owl);
    owl = NULL;

    const char *queries[] = {"a photo of a cat", "a remote control"};
    const char *bad_utf8[] = {"a photo of a cat", "caf\xc3"};
    const char *null_query[] = {"a photo of a cat", NULL};
    WgvDetection dets[64], dets_rgb[64];
    size_t count = 0, count_rgb = 0, runs = 0;
    WgvDetectOptions opts = wgv_detect_options_default();
    CHECK(opts.threshold > 0.0f && opts.nms_iou > 0.0f);
    opts.threshold = 0.0f; /* every patch's box, so the too-small path has work */
    EXPECT(wgv_detector_detect_file(det, png, bad_utf8, 2, &opts, dets, 64, &count), WGV_STATUS_INVALID_ARGUMENT,
           "queries[1] is not valid UTF-8");
    EXPECT(wgv_detector_detect_file(det, png, null_query, 2, &opts, dets, 64, &count), WGV_STATUS_INVALID_ARGUMENT,
           "queries[1] is NULL");
    EXPECT(wgv_detector_detect_file(det, png, queries, 0, &opts, dets, 64, &count), WGV_STATUS_INVALID_ARGUMENT,
           "n_queries is 0");
    EXPECT(wgv_detector_detect_file(det, png, NULL, 2, &opts, dets, 64, &count), WGV_STATUS_INVALID_ARGUMENT,
           "queries is NULL");
    EXPECT(wgv_detector_detect_file(det, missing, queries, 2, &opts, dets, 64, &count), WGV_STATUS_IO, missing);
    EXPECT(wgv_detector_detect_file(det, vit_path, queries, 2, &opts, dets, 64, &count), WGV_STATUS_INPUT, vit_path);
    EXPECT(wgv_detector_detect_file(det, png, queries, 2, &opts, dets, 64, NULL), WGV_STATUS_INVALID_ARGUMENT,
           "count is NULL");
    EXPECT(wgv_detector_detect_file(NULL, png, queries, 2, &opts, dets, 64, &count), WGV_STATUS_INVALID_ARGUMENT,
           "detector is NULL");
    WgvDetectOptions nan_opts = {NAN, 0.3f};
    EXPECT(wgv_detector_detect_file(det, png, queries, 2, &nan_opts, dets, 64, &count), WGV_STATUS_INVALID_ARGUMENT,
           "finite");
    EXPECT_OK(wgv_detector_text_runs(det, &runs));
    CHECK(runs == 0);

    EXPECT_OK(wgv_detector_detect_file(det, png, queries, 2, &opts, dets, 64, &count));
    CHECK(count > 1 && count <= 64);
    for (size_t i = 0; i < count; i++) {
        CHECK(dets[i].query < 2 && dets[i].score >= 0.0f && dets[i].score <= 1.0f);
        CHECK(dets[i].bbox[0] < dets[i].bbox[2] && dets[i].bbox[1] < dets[i].bbox[3]);
        if (i > 0) CHECK(dets[i].score <= dets[i - 1].score);
    }
    /* Too small: the best one, the full count, and the status. */
    WgvDetection one[1];
    size_t count_one = 0;
    EXPECT(wgv_detector_detect_file(det, png, queries, 2, &opts, one, 1, &count_one), WGV_STATUS_BUFFER_TOO_SMALL,
           "detections");
    CHECK(count_one == count && same_detections(one, dets, 1));

    /* The same image from memory gives the same detections. */
    size_t rgb_len = 0;
    unsigned char *rgb = read_file(argv[4], &rgb_len);
    CHECK(rgb != NULL && rgb_len == (size_t)width * height * 3);
    EXPECT(wgv_detector_detect_rgb(det, rgb, width, height, 3 * width - 1, queries, 2, &opts, dets_rgb, 64, &count_rgb),
           WGV_STATUS_INVALID_ARGUMENT, "stride");
    EXPECT(wgv_detector_detect_rgb(det, rgb, 0, height, 0, queries, 2, &opts, dets_rgb, 64, &count_rgb),
           WGV_STATUS_INVALID_ARGUMENT, "at least 1");
    EXPECT(wgv_detector_detect_rgb(det, NULL, width, height, 3 * width, queries, 2, &opts, dets_rgb, 64, &count_rgb),
           WGV_STATUS_INVALID_ARGUMENT, "rgb is NULL");
    EXPECT_OK(wgv_detector_detect_rgb(det, rgb, width, height, 3 * width, queries, 2, &opts, dets_rgb, 64, &count_rgb));
    CHECK(count_rgb == count && same_detections(dets_rgb, dets, count));
    /* One query set: its text embeddings were computed once. */
    EXPECT_OK(wgv_detector_text_runs(det, &runs));
    CHECK(runs == 1);
    free(rgb);

    wgv_detector_free(det);
    wgv_detector_free(NULL);
    wgv_model_free(vit);
    wgv_model_free(NULL);
    wgv_gpu_free(gpu);
    free(pixels);

    if (failures) {
        fprintf(stderr, "%d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("all %d checks ok\n", checks);
    return 0;
}
