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

/* Two rows of RGB (`a` above `b`) into two rows of Y and one row each of U and V: ~0.45 ms a 512² frame here
 * (AVX-512 and AVX2 builds via target_clones measured no faster: the stride-3 loads dominate). */
static void convert_rows(const uint8_t *restrict a, const uint8_t *restrict b, Py_ssize_t width,
                         uint8_t *restrict ya, uint8_t *restrict yb, uint8_t *restrict u, uint8_t *restrict v)
{
    for (Py_ssize_t x = 0; x < width; x++) {
        int32_t r = a[3 * x], g = a[3 * x + 1], bl = a[3 * x + 2];
        ya[x] = (uint8_t)((YR * r + YG * g + YB * bl + (16 << 16) + (1 << 15)) >> 16);
        r = b[3 * x], g = b[3 * x + 1], bl = b[3 * x + 2];
        yb[x] = (uint8_t)((YR * r + YG * g + YB * bl + (16 << 16) + (1 << 15)) >> 16);
    }
    for (Py_ssize_t x = 0; x < width / 2; x++) {
        const uint8_t *p = a + 6 * x, *q = b + 6 * x;
        int32_t r = p[0] + p[3] + q[0] + q[3], g = p[1] + p[4] + q[1] + q[4], bl = p[2] + p[5] + q[2] + q[5];
        /* Sums of four (0..1020), so the shift is 16 + 2. The negative terms reach at most 28784 · 1020 = 29.4M,
         * less than the offset 128 << 18 = 33.6M: the total stays positive (>> is a floor) and below 2^31. */
        u[x] = (uint8_t)((UR * r + UG * g + UB * bl + (128 << 18) + (1 << 17)) >> 18);
        v[x] = (uint8_t)((VR * r + VG * g + VB * bl + (128 << 18) + (1 << 17)) >> 18);
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
    } else if (rgb.len != width * height * 3) {
        PyErr_SetString(PyExc_ValueError, "rgb must be width * height * 3 bytes");
    } else if (out.len != width * height * 3 / 2) {
        PyErr_SetString(PyExc_ValueError, "out must be width * height * 3 / 2 bytes");
    } else {
        const uint8_t *src = rgb.buf;
        uint8_t *y = out.buf, *u = y + width * height, *v = u + (width / 2) * (height / 2);
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t row = 0; row < height; row += 2)
            convert_rows(src + row * width * 3, src + (row + 1) * width * 3, width, y + row * width,
                         y + (row + 1) * width, u + (row / 2) * (width / 2), v + (row / 2) * (width / 2));
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
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
