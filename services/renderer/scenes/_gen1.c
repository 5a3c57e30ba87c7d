/* gen1's per-pixel work in C: the silk, the light, the shapes and the tone curve for a range of rows.
 *
 * Why: in numpy each of the ~60 steps a pixel goes through is a pass over a band of float32 planes (0.8 core-s a
 * default job, most of it memory traffic and temporaries); here a pixel goes through them in registers.
 * Everything scalar (the composition, positions, trigonometry, box bounds) stays in gen1.py and comes in as
 * float32 parameters, so this file holds only arithmetic.
 *
 * Same bits everywhere: every step is the one IEEE single-precision operation numpy does (+, -, *, /, sqrt,
 * min/max, comparisons, truncation, table look-ups), in numpy's order, with numpy's constants (a double rounded
 * once to float: (float)0.16, never 0.16f). Built with -ffp-contract=off (no fused multiply-add) and without
 * fast-math, so the compiler may vectorise but may not reassociate: the output equals gen1.py's numpy reference
 * bit for bit (tests/unit/test_render.py), on any x86-64 or arm64 machine, whatever the thread count.
 *
 * The GIL is released while rows are made, so gen1.py makes a frame's halves on two threads at once.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TABLE_BITS 12
#define TABLE (1 << TABLE_BITS)
#define COLOURS 1024

/* Layout of the frame's parameters (float32), written by gen1.py's _frame_params. */
enum { P_WARP0 = 0, P_WARP1 = 3, P_SILK0 = 6, P_SILK1 = 10, P_SILK2 = 14, P_LIGHT = 18, P_TOTAL = 21, P_COUNT };
/* One shape's record (float32; integers are exact in float32 at these sizes), written by gen1.py. */
enum {
    S_KIND, S_X0, S_Y0, S_X1, S_Y1, S_X, S_Y, S_EDGE, S_THICK, S_SOFT, S_R, S_G, S_B, S_SIDES, S_COS, S_SIN = S_COS + 6,
    S_STRIDE = S_SIN + 6
};
enum { CIRCLE = 0, RING = 1, POLYGON = 2 };

typedef struct {
    const float *sine, *colours, *vignette, *unit, *p, *shapes;
    Py_ssize_t size, nshapes;
} Scene;

/* One row's working planes (`size` floats each): the colour as three planes (so the shapes' loops run over
 * contiguous floats), the bent coordinates, the silk field, per-shape distances, and table indices. */
enum { W_R, W_G, W_B, W_U, W_V, W_FIELD, W_SHADE, W_EDGE, W_FLOATS };
typedef struct {
    float *f[W_FLOATS];
    int32_t *index;
} Work;

/* numpy's wave(): ((phase + float32(64)) * float32(4096)).astype(int32) & 4095, an index into the sine table */
#define TURN_INDEX(phase) ((int32_t)(((phase) + 64.0f) * (float)TABLE) & (TABLE - 1))

/* Written as short loops over a row, each one operation a pixel after another, so the compiler vectorises them
 * (the table reads become gathers where the CPU has them): the same operations, in the same order per pixel.
 * Three builds, picked at load time by the CPU: AVX-512 (x86-64-v4), AVX2, and the baseline; all give the same
 * bytes (measured on the default job's 100 frames, one thread, same run: AVX-512 0.21 core-s, AVX2 0.31). */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__) && !defined(GEN1_NO_CLONES)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
static void make_row(const Scene *s, Py_ssize_t r, const Work *w, uint8_t *out)
{
    const Py_ssize_t size = s->size;
    const float *p = s->p, *sine = s->sine, *x = s->unit, *vignette = s->vignette + r * size;
    const float y = s->unit[r], total = p[P_TOTAL];
    const float k016 = (float)0.16, k_fold_scale = (float)(0.6 * 1023.0), k_fold_base = (float)(0.1 * 1023.0);
    const float k078 = (float)0.78, k022 = (float)0.22, k035 = (float)0.35, k085 = (float)0.85;
    const float k_out = (float)(255.0 * 1.35);
    float *restrict R = w->f[W_R], *restrict G = w->f[W_G], *restrict B = w->f[W_B];
    float *restrict u = w->f[W_U], *restrict v = w->f[W_V], *restrict field = w->f[W_FIELD];
    float *restrict shade = w->f[W_SHADE], *restrict e = w->f[W_EDGE];
    int32_t *restrict index = w->index;
    Py_ssize_t c;

    /* Domain warp: u = x + 0.16·wave(fx·x + fy·y + phase), v likewise (fy·y is the same product for the row). */
    const float *w0 = p + P_WARP0, *w1 = p + P_WARP1, *lt = p + P_LIGHT;
    const float w0y = w0[1] * y, w1y = w1[1] * y, lty = lt[1] * y;
    for (c = 0; c < size; c++)
        index[c] = TURN_INDEX(w0[0] * x[c] + w0y + w0[2]);
    for (c = 0; c < size; c++)
        u[c] = x[c] + k016 * sine[index[c]];
    for (c = 0; c < size; c++)
        index[c] = TURN_INDEX(w1[0] * x[c] + w1y + w1[2]);
    for (c = 0; c < size; c++)
        v[c] = y + k016 * sine[index[c]];
    /* The silk: three waves on the bent coordinates, summed from zero as numpy's `field += …` does. */
    for (c = 0; c < size; c++)
        field[c] = 0.0f;
    for (int k = 0; k < 3; k++) {
        const float *sk = p + P_SILK0 + 4 * k, weight = sk[3];
        for (c = 0; c < size; c++)
            index[c] = TURN_INDEX(sk[0] * u[c] + sk[1] * v[c] + sk[2]);
        for (c = 0; c < size; c++)
            field[c] += weight * sine[index[c]];
    }
    for (c = 0; c < size; c++) {
        float g = fabsf(field[c] / total);
        g = g * (2.0f - g);
        index[c] = (int32_t)(g * k_fold_scale + k_fold_base);
    }
    for (c = 0; c < size; c++) {
        const float *colour = s->colours + 3 * index[c];
        R[c] = colour[0];
        G[c] = colour[1];
        B[c] = colour[2];
    }
    for (c = 0; c < size; c++)
        index[c] = TURN_INDEX(lt[0] * x[c] + lty + lt[2]);
    for (c = 0; c < size; c++)
        shade[c] = (k078 + k022 * sine[index[c]]) * vignette[c];
    for (c = 0; c < size; c++) {
        R[c] *= shade[c];
        G[c] *= shade[c];
        B[c] *= shade[c];
    }

    /* The shapes, in order, each over its box's part of this row: edge distance, then body and glow added. */
    for (Py_ssize_t i = 0; i < s->nshapes; i++) {
        const float *sh = s->shapes + i * S_STRIDE;
        const Py_ssize_t x0 = (Py_ssize_t)sh[S_X0], x1 = (Py_ssize_t)sh[S_X1];
        if (r < (Py_ssize_t)sh[S_Y0] || r >= (Py_ssize_t)sh[S_Y1] || x0 >= x1)
            continue;
        const int kind = (int)sh[S_KIND], sides = (int)sh[S_SIDES];
        const float cx = sh[S_X], dy = (float)r - sh[S_Y], soft = sh[S_SOFT], at = sh[S_EDGE], thick = sh[S_THICK];
        if (kind == POLYGON) {
            const float c0 = sh[S_COS], s0 = dy * sh[S_SIN];
            for (c = x0; c < x1; c++)
                e[c] = ((float)c - cx) * c0 + s0;
            for (int j = 1; j < sides; j++) {
                const float cj = sh[S_COS + j], sj = dy * sh[S_SIN + j];
                for (c = x0; c < x1; c++) {
                    float d = ((float)c - cx) * cj + sj;
                    e[c] = d > e[c] ? d : e[c];  /* np.maximum (no NaN can occur) */
                }
            }
            for (c = x0; c < x1; c++)
                e[c] = e[c] - at;
        } else if (kind == RING) {
            const float dy2 = dy * dy;
            for (c = x0; c < x1; c++) {
                float dx = (float)c - cx;
                e[c] = fabsf(sqrtf(dx * dx + dy2) - at) - thick;
            }
        } else {
            const float dy2 = dy * dy;
            for (c = x0; c < x1; c++) {
                float dx = (float)c - cx;
                e[c] = sqrtf(dx * dx + dy2) - at;
            }
        }
        const float cr = sh[S_R], cg = sh[S_G], cb = sh[S_B];
        for (c = x0; c < x1; c++) {
            float edge = e[c];
            float body = 0.5f - edge;  /* np.clip(0.5 - edge, 0, 1): max then min */
            body = body < 0.0f ? 0.0f : body;
            body = body > 1.0f ? 1.0f : body;
            float glow = soft / ((edge > 0.0f ? edge : 0.0f) + soft);
            glow = glow * glow * k022;
            float amount = body * k085 + glow;
            R[c] += amount * cr;
            G[c] += amount * cg;
            B[c] += amount * cb;
        }
    }

    /* Soft shoulder (overlaps glow, never clip), then np.clip(m * 344.25 + 0.5, 0, 255).astype(uint8). */
    float *planes[3] = {R, G, B};
    for (int ch = 0; ch < 3; ch++) {
        float *restrict plane = planes[ch];
        for (c = 0; c < size; c++) {
            float m = plane[c] / (1.0f + k035 * plane[c]);
            float o = m * k_out + 0.5f;
            o = o < 0.0f ? 0.0f : o;
            o = o > 255.0f ? 255.0f : o;
            plane[c] = o;
        }
        for (c = 0; c < size; c++)
            out[3 * c + ch] = (uint8_t)(int32_t)plane[c];
    }
}

PyDoc_STRVAR(rows_doc,
"rows(out, size, r0, r1, params, shapes, sine, colours, vignette, unit)\n\n"
"Makes rows r0..r1 of a size x size RGB frame into `out` (size*size*3 bytes, writable). The float32 buffers:\n"
"params (the frame's waves, see gen1.py), shapes (one record per shape), sine (4096), colours (1024x3),\n"
"vignette (size x size), unit (size). The GIL is released.");

static PyObject *rows(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer out, params, shapes, sine, colours, vignette, unit;
    Py_ssize_t size, r0, r1;
    if (!PyArg_ParseTuple(args, "w*nnny*y*y*y*y*y*", &out, &size, &r0, &r1, &params, &shapes, &sine, &colours,
                          &vignette, &unit))
        return NULL;
    PyObject *result = NULL;
    float *img = NULL;  /* the row's working planes: W_FLOATS floats and one int32 per column */
    if (size < 1 || out.len != size * size * 3) {
        PyErr_SetString(PyExc_ValueError, "out must be size*size*3 bytes");
    } else if (r0 < 0 || r1 > size || r0 > r1) {
        PyErr_SetString(PyExc_ValueError, "rows must lie within the frame");
    } else if (params.len != P_COUNT * 4 || shapes.len % (S_STRIDE * 4) || sine.len != TABLE * 4
               || colours.len != COLOURS * 3 * 4 || vignette.len != size * size * 4 || unit.len != size * 4) {
        PyErr_SetString(PyExc_ValueError, "a float32 buffer has the wrong size");
    } else if ((img = PyMem_RawMalloc((size_t)size * (W_FLOATS + 1) * sizeof(float))) == NULL) {
        PyErr_NoMemory();
    } else {
        Scene s = {sine.buf, colours.buf, vignette.buf, unit.buf, params.buf, shapes.buf, size,
                   shapes.len / (S_STRIDE * 4)};
        int bad = 0;
        /* Shape records come from gen1.py, but a bad box must not write outside a row. */
        for (Py_ssize_t i = 0; i < s.nshapes; i++) {
            const float *sh = s.shapes + i * S_STRIDE;
            if (sh[S_X0] < 0 || sh[S_X1] > size || sh[S_SIDES] < 0 || sh[S_SIDES] > 6)
                bad = 1;
        }
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "a shape's box or side count is out of range");
        } else {
            uint8_t *dst = out.buf;
            Work work;
            for (int k = 0; k < W_FLOATS; k++)
                work.f[k] = img + k * size;
            work.index = (int32_t *)(img + W_FLOATS * size);
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t r = r0; r < r1; r++)
                make_row(&s, r, &work, dst + r * size * 3);
            Py_END_ALLOW_THREADS
            result = Py_None;
            Py_INCREF(result);
        }
    }
    PyMem_RawFree(img);
    PyBuffer_Release(&out);
    PyBuffer_Release(&params);
    PyBuffer_Release(&shapes);
    PyBuffer_Release(&sine);
    PyBuffer_Release(&colours);
    PyBuffer_Release(&vignette);
    PyBuffer_Release(&unit);
    return result;
}

static PyMethodDef methods[] = {
    {"rows", rows, METH_VARARGS, rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "renderer.scenes._gen1", "gen1's per-pixel work (see gen1.py).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gen1(void)
{
    return PyModule_Create(&module);
}
