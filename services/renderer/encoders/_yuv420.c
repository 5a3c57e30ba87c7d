/* RGB (packed, 8 bits a channel) to planar YUV 4:2:0, BT.601 limited range, for the MP4 encoder.
 *
 * Why by hand: ffmpeg's swscale did this inside the encoder process, 0.1-0.2 core-s of a default job's ~0.6, with
 * twice the bytes through the pipe (rgb24 is 3 bytes a pixel, yuv420p 1.5), and its SIMD paths may round
 * differently from its C path on another CPU unless told to be bit-exact. Here it is integer arithmetic only:
 * the same bytes on every machine, checked against a float64 numpy reference of the BT.601 matrix (within one
 * level, tests/unit/test_yuv420.py).
 *
 * Luma: Y = 16 + 219/255 · (0.299 R + 0.587 G + 0.114 B), in 16-bit fixed point, rounded. Chroma: the 2×2 block's
 * RGB sums (what swscale's default gives too, measured: the same x264 output size and PSNR within 0.01 dB),
 * then Cb = 128 + 224/255 · (B - Y')/1.772 and Cr = 128 + 224/255 · (R - Y')/1.402, rounded. Each row of
 * coefficients sums to what a grey pixel needs (Cb = Cr = 128 exactly, white Y = 235).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define YR 16829
#define YG 33039
#define YB 6416
#define UR (-9714)
#define UG (-19070)
#define UB 28784
#define VR 28784
#define VG (-24103)
#define VB (-4681)

/* Two rows of RGB (`a` above `b`) into two rows of Y and one row each of U and V. The packed pixels are first
 * spread into planes (`scratch`: 6 × width int32), so the arithmetic runs as loops over contiguous ints that GCC
 * vectorises (straight over packed bytes it did not: 0.45 ms a 512² frame; this way 0.28-0.36 ms of CPU, runs of
 * 200 frames at load average ~2.6, about 30 ms of a 100-frame job). Integer arithmetic:
 * every build picked at load time gives the same bytes. */
#if defined(__GNUC__) && defined(__x86_64__) && !defined(__clang__)
__attribute__((target_clones("arch=x86-64-v4", "avx2", "default")))
#endif
static void convert_rows(const uint8_t *restrict a, const uint8_t *restrict b, Py_ssize_t width,
                         uint8_t *restrict ya, uint8_t *restrict yb, uint8_t *restrict u, uint8_t *restrict v,
                         int32_t *restrict scratch)
{
    int32_t *restrict r = scratch, *restrict g = r + 2 * width, *restrict bl = g + 2 * width;
    Py_ssize_t x, n = 2 * width;
    for (x = 0; x < width; x++) {
        r[x] = a[3 * x], g[x] = a[3 * x + 1], bl[x] = a[3 * x + 2];
        r[width + x] = b[3 * x], g[width + x] = b[3 * x + 1], bl[width + x] = b[3 * x + 2];
    }
    for (x = 0; x < width; x++)
        ya[x] = (uint8_t)((YR * r[x] + YG * g[x] + YB * bl[x] + (16 << 16) + (1 << 15)) >> 16);
    for (x = width; x < n; x++)
        yb[x - width] = (uint8_t)((YR * r[x] + YG * g[x] + YB * bl[x] + (16 << 16) + (1 << 15)) >> 16);
    for (x = 0; x < width / 2; x++) {
        int32_t rs = r[2 * x] + r[2 * x + 1] + r[width + 2 * x] + r[width + 2 * x + 1];
        int32_t gs = g[2 * x] + g[2 * x + 1] + g[width + 2 * x] + g[width + 2 * x + 1];
        int32_t bs = bl[2 * x] + bl[2 * x + 1] + bl[width + 2 * x] + bl[width + 2 * x + 1];
        /* Sums of four (0..1020), so the shift is 16 + 2. The negative terms reach at most 28784 · 1020 = 29.4M,
         * less than the offset 128 << 18 = 33.6M: the total stays positive (>> is a floor) and below 2^31. */
        u[x] = (uint8_t)((UR * rs + UG * gs + UB * bs + (128 << 18) + (1 << 17)) >> 18);
        v[x] = (uint8_t)((VR * rs + VG * gs + VB * bs + (128 << 18) + (1 << 17)) >> 18);
    }
}

PyDoc_STRVAR(rgb_to_yuv420_doc,
"rgb_to_yuv420(rgb, width, height, out)\n\n"
"Writes the yuv420p planes (Y, then U, then V) of `rgb` (height x width x 3 bytes, both even) into `out`\n"
"(width * height * 3 / 2 bytes). The GIL is released.");

static PyObject *rgb_to_yuv420(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer rgb, out;
    Py_ssize_t width, height;
    if (!PyArg_ParseTuple(args, "y*nnw*", &rgb, &width, &height, &out))
        return NULL;
    PyObject *result = NULL;
    if (width < 2 || height < 2 || width % 2 || height % 2) {
        PyErr_SetString(PyExc_ValueError, "width and height must be even and at least 2");
    } else if (width > PY_SSIZE_T_MAX / 3 / height) {  /* before any product of the two can overflow */
        PyErr_SetString(PyExc_ValueError, "width * height * 3 is too large");
    } else if (rgb.len != width * height * 3) {
        PyErr_SetString(PyExc_ValueError, "rgb must be width * height * 3 bytes");
    } else if (out.len != width * height * 3 / 2) {
        PyErr_SetString(PyExc_ValueError, "out must be width * height * 3 / 2 bytes");
    } else {
        const uint8_t *src = rgb.buf;
        uint8_t *y = out.buf, *u = y + width * height, *v = u + (width / 2) * (height / 2);
        int32_t *scratch = PyMem_RawMalloc((size_t)width * 6 * sizeof(int32_t));
        if (scratch == NULL) {
            PyErr_NoMemory();
        } else {
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t row = 0; row < height; row += 2)
                convert_rows(src + row * width * 3, src + (row + 1) * width * 3, width, y + row * width,
                             y + (row + 1) * width, u + (row / 2) * (width / 2), v + (row / 2) * (width / 2),
                             scratch);
            Py_END_ALLOW_THREADS
            PyMem_RawFree(scratch);
            result = Py_None;
            Py_INCREF(result);
        }
    }
    PyBuffer_Release(&rgb);
    PyBuffer_Release(&out);
    return result;
}

static PyMethodDef methods[] = {
    {"rgb_to_yuv420", rgb_to_yuv420, METH_VARARGS, rgb_to_yuv420_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "renderer.encoders._yuv420", "RGB to yuv420p for the MP4 encoder (see mp4.py).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__yuv420(void)
{
    return PyModule_Create(&module);
}
