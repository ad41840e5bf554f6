/* Open-vocabulary detection with an OWL-ViT / OWLv2 model file through the C API.
 *
 *   detect MODEL.safetensors IMAGE QUERY...
 *
 * The tokenizer is the one stored in the model file (`wgvision convert --tokenizer`).
 * Output, one line per detection, best first:
 *   det I query Q score S box X0 Y0 X1 Y1 label TEXT */
#include <stdio.h>
#include <stdlib.h>

#include "wgvision.h"

static int fail(const char *what, WgvStatus status) {
    fprintf(stderr, "%s: %s: %s\n", what, wgv_status_name(status), wgv_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.safetensors IMAGE QUERY...\n", argv[0]);
        return 2;
    }
    const char *const *queries = (const char *const *)(argv + 3);
    size_t n_queries = (size_t)(argc - 3);
    WgvGpu *gpu = NULL;
    WgvModel *model = NULL;
    WgvDetector *detector = NULL;
    WgvDetection *dets = NULL;
    int rc = 1;
    WgvStatus s;

    if ((s = wgv_gpu_create(NULL, &gpu)) != WGV_STATUS_OK) return fail("gpu", s);
    if ((s = wgv_model_load(gpu, argv[1], &model)) != WGV_STATUS_OK) {
        rc = fail(argv[1], s);
        goto done;
    }
    if ((s = wgv_detector_create(model, NULL, &detector)) != WGV_STATUS_OK) {
        rc = fail("detector", s);
        goto done;
    }

    WgvDetectOptions opts = wgv_detect_options_default();
    size_t capacity = 16, count = 0;
    dets = malloc(capacity * sizeof(WgvDetection));
    if (!dets) goto done;
    s = wgv_detector_detect_file(detector, argv[2], queries, n_queries, &opts, dets, capacity, &count);
    if (s == WGV_STATUS_BUFFER_TOO_SMALL) {
        /* More than fit: grow to the count and detect again (the query set's text
         * embeddings are cached, so only the image tower runs again). */
        capacity = count;
        WgvDetection *bigger = realloc(dets, capacity * sizeof(WgvDetection));
        if (!bigger) goto done;
        dets = bigger;
        s = wgv_detector_detect_file(detector, argv[2], queries, n_queries, &opts, dets, capacity, &count);
    }
    if (s != WGV_STATUS_OK) {
        rc = fail(argv[2], s);
        goto done;
    }
    printf("%zu detections above %g\n", count, opts.threshold);
    for (size_t i = 0; i < count; i++) {
        const WgvDetection *d = &dets[i];
        printf("det %zu query %zu score %.9g box %.9g %.9g %.9g %.9g label %s\n", i, d->query, d->score, d->bbox[0],
               d->bbox[1], d->bbox[2], d->bbox[3], queries[d->query]);
    }
    rc = 0;

done:
    free(dets);
    wgv_detector_free(detector);
    wgv_model_free(model);
    wgv_gpu_free(gpu);
    return rc;
}
