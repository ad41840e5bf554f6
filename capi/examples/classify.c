/* Classify image files with a wgvision model through the C API: load the model, turn
 * each PNG / JPEG into pixels with the model's own preprocessing, run them as one
 * batch, and print each image's top-5 classes.
 *
 *   classify MODEL.safetensors IMAGE...
 *
 * Output, one line per class:  image I rank R class C score S [name N]
 * (S is the logit; names when the model file has them). */
#include <stdio.h>
#include <stdlib.h>

#include "wgvision.h"

#define TOP 5

static int fail(const char *what, WgvStatus status) {
    fprintf(stderr, "%s: %s: %s\n", what, wgv_status_name(status), wgv_last_error());
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.safetensors IMAGE...\n", argv[0]);
        return 2;
    }
    size_t batch = (size_t)(argc - 2);
    WgvGpu *gpu = NULL;
    WgvModel *model = NULL;
    float *pixels = NULL, *logits = NULL;
    int rc = 1;
    WgvStatus s;

    if ((s = wgv_gpu_create(NULL, &gpu)) != WGV_STATUS_OK) return fail("gpu", s);
    printf("gpu %s\n", wgv_gpu_name(gpu));
    if ((s = wgv_model_load(gpu, argv[1], &model)) != WGV_STATUS_OK) {
        rc = fail(argv[1], s);
        goto done;
    }

    size_t c = 0, h = 0, w = 0, classes = 0, needed = 0;
    wgv_model_input_shape(model, &c, &h, &w);
    wgv_model_num_classes(model, &classes);
    printf("model %s input %zux%zux%zu classes %zu output %s\n", wgv_model_name(model), c, h, w, classes,
           wgv_model_output_name(model, 0));

    /* One image after another into a [B, C, H, W] batch. */
    size_t per_image = c * h * w;
    pixels = malloc(batch * per_image * sizeof(float));
    if (!pixels) goto done;
    for (size_t i = 0; i < batch; i++) {
        if ((s = wgv_model_load_image(model, argv[2 + i], pixels + i * per_image, per_image, NULL)) != WGV_STATUS_OK) {
            rc = fail(argv[2 + i], s);
            goto done;
        }
    }

    /* Ask for the output size first (a size query runs nothing), then run. */
    s = wgv_model_run(model, pixels, batch * per_image, batch, NULL, 0, &needed);
    if (s != WGV_STATUS_BUFFER_TOO_SMALL) {
        rc = fail("size query", s);
        goto done;
    }
    logits = malloc(needed * sizeof(float));
    if (!logits) goto done;
    if ((s = wgv_model_run(model, pixels, batch * per_image, batch, logits, needed, &needed)) != WGV_STATUS_OK) {
        rc = fail("run", s);
        goto done;
    }

    size_t n = needed / batch; /* values per image */
    for (size_t i = 0; i < batch; i++) {
        const float *row = logits + i * n;
        int taken[TOP];
        for (int r = 0; r < TOP && r < (int)n; r++) {
            /* The r-th largest, ties to the lower index. */
            int best = -1;
            for (size_t k = 0; k < n; k++) {
                int used = 0;
                for (int j = 0; j < r; j++) used |= taken[j] == (int)k;
                if (!used && (best < 0 || row[k] > row[best])) best = (int)k;
            }
            taken[r] = best;
            const char *name = wgv_model_class_name(model, (size_t)best);
            printf("image %zu rank %d class %d score %.9g%s%s\n", i, r, best, row[best], name ? " name " : "",
                   name ? name : "");
        }
    }
    rc = 0;

done:
    free(logits);
    free(pixels);
    wgv_model_free(model);
    wgv_gpu_free(gpu);
    return rc;
}
