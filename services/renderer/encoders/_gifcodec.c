/* The GIF encoder's two hot loops, in C: mapping RGB pixels to palette indices, and LZW-compressing a frame's
 * changed box. Everything else (palette fitting, frame differencing policy, the file's structure) stays in
 * gif.py.
 *
 * Why by hand: Pillow's LZW took 70% of the GIF's time and holds the GIL, so frames could not be compressed on
 * two cores, nor while the next frame renders. This one releases the GIL and keeps its string table small and
 * its hash cheap. Its output is checked against independent decoders (Pillow's, ffmpeg's and a JavaScript one)
 * in tests/unit/test_gif_codec.py.
 *
 * Everything is integer arithmetic: the same input gives the same bytes on every machine.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define LUT_SIZE (1 << 18)          /* 6 bits per channel */
#define LUT_UNSET 255         /* never a palette index: at most 255 colours, 255 is the transparent slot */
/* The string table: (prefix code, pixel) -> code, by open addressing in 32768 32-bit slots (key << 12 | code;
 * 0 is empty). At most 3838 entries, so probes are short. The lookup is the loop's critical path (each pixel's
 * depends on the one before), so the prefix only goes through one xor; the pixel, read independently, is spread
 * over the table by a multiply off that path. (A bare shift of the pixel was 4% faster on gen1 but crowded
 * few-colour frames into one corner of the table: 30-60 ms a 512² frame instead of 1.) */
#define HASH_BITS 15
#define HASH_SLOTS (1u << HASH_BITS)
#define HASH(prefix, pixel) ((((pixel) * 0x9E3779B1u) ^ (prefix)) & (HASH_SLOTS - 1))
#define MAX_CODES 4096
#define CLEAR_CODE 256
#define END_CODE 257
#define FIRST_FREE 258

/* ---- palette mapping ----------------------------------------------------------------------------------------- */

/* The nearest palette entry to the centre of a 6-bit-per-channel bin (squared distance, ties to the lowest index).
 * Coordinates are doubled so the centre (4·v + 1.5) is an integer. */
static uint8_t nearest(uint32_t key, const uint8_t *palette, Py_ssize_t colors)
{
    int32_t r = 8 * (int32_t)(key >> 12) + 3, g = 8 * (int32_t)((key >> 6) & 63) + 3, b = 8 * (int32_t)(key & 63) + 3;
    int32_t best = INT32_MAX;
    uint8_t best_index = 0;
    for (Py_ssize_t i = 0; i < colors; i++) {
        int32_t dr = 2 * palette[3 * i] - r, dg = 2 * palette[3 * i + 1] - g, db = 2 * palette[3 * i + 2] - b;
        int32_t d = dr * dr + dg * dg + db * db;
        if (d < best) {
            best = d;
            best_index = (uint8_t)i;
        }
    }
    return best_index;
}

PyDoc_STRVAR(map_frame_doc,
"map_frame(rgb, palette, lut, out)\n\n"
"Writes the palette index of every pixel of `rgb` (packed RGB bytes) into `out` (one byte a pixel). `lut` is a\n"
"caller-owned cache of 2**18 bytes, all 255 at first; it must stay with one palette of at most 255 colours.");

static PyObject *map_frame(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer rgb, palette, lut, out;
    if (!PyArg_ParseTuple(args, "y*y*w*w*", &rgb, &palette, &lut, &out))
        return NULL;
    PyObject *result = NULL;
    Py_ssize_t pixels = out.len, colors = palette.len / 3;
    if (rgb.len != 3 * pixels) {
        PyErr_SetString(PyExc_ValueError, "rgb must hold three bytes for every byte of out");
    } else if (colors < 1 || colors > 255 || palette.len % 3) {
        PyErr_SetString(PyExc_ValueError, "palette must be 1 to 255 RGB triples");
    } else if (lut.len != LUT_SIZE) {
        PyErr_SetString(PyExc_ValueError, "lut must be 2**18 bytes");
    } else {
        const uint8_t *src = rgb.buf, *pal = palette.buf;
        uint8_t *cache = lut.buf;
        uint8_t *dst = out.buf;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t i = 0; i < pixels; i++, src += 3) {
            uint32_t key = ((uint32_t)(src[0] >> 2) << 12) | ((uint32_t)(src[1] >> 2) << 6) | (src[2] >> 2);
            uint8_t index = cache[key];
            if (index == LUT_UNSET)
                index = cache[key] = nearest(key, pal, colors);
            dst[i] = index;
        }
        Py_END_ALLOW_THREADS
        result = Py_None;
        Py_INCREF(result);
    }
    PyBuffer_Release(&rgb);
    PyBuffer_Release(&palette);
    PyBuffer_Release(&lut);
    PyBuffer_Release(&out);
    return result;
}

PyDoc_STRVAR(changed_box_doc,
"changed_box(current, previous, width) -> (x0, y0, x1, y1) or None\n\n"
"The smallest box holding every pixel whose index differs between the two frames (end-exclusive), or None.");

static PyObject *changed_box(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer cur, prev;
    Py_ssize_t width;
    if (!PyArg_ParseTuple(args, "y*y*n", &cur, &prev, &width))
        return NULL;
    PyObject *result = NULL;
    if (width < 1 || cur.len != prev.len || cur.len % width) {
        PyErr_SetString(PyExc_ValueError, "frames must be the same size, whole rows of `width`");
    } else {
        const uint8_t *a = cur.buf, *b = prev.buf;
        Py_ssize_t height = cur.len / width, x0 = width, x1 = 0, y0 = height, y1 = 0;
        Py_BEGIN_ALLOW_THREADS
        for (Py_ssize_t y = 0; y < height; y++) {
            const uint8_t *ra = a + y * width, *rb = b + y * width;
            if (memcmp(ra, rb, (size_t)width) == 0)
                continue;
            if (y < y0)
                y0 = y;
            y1 = y + 1;
            Py_ssize_t lo = 0, hi = width;
            while (ra[lo] == rb[lo])
                lo++;
            while (ra[hi - 1] == rb[hi - 1])
                hi--;
            if (lo < x0)
                x0 = lo;
            if (hi > x1)
                x1 = hi;
        }
        Py_END_ALLOW_THREADS
        if (y1 == 0) {
            result = Py_None;
            Py_INCREF(result);
        } else {
            result = Py_BuildValue("nnnn", x0, y0, x1, y1);
        }
    }
    PyBuffer_Release(&cur);
    PyBuffer_Release(&prev);
    return result;
}

/* ---- LZW ------------------------------------------------------------------------------------------------------ */

/* Codes are packed least significant bit first. `out` must have 4 spare bytes past the last one flushed. */
typedef struct {
    uint8_t *out;
    uint64_t bits;
    int nbits;
} BitWriter;

static inline void put_code(BitWriter *w, uint32_t code, int width)
{
    w->bits |= (uint64_t)code << w->nbits;
    w->nbits += width;
    if (w->nbits >= 32) {
        for (int i = 0; i < 4; i++)
            *w->out++ = (uint8_t)(w->bits >> (8 * i));
        w->bits >>= 32;
        w->nbits -= 32;
    }
}

/* GIF's LZW of `n` pixels (minimum code size 8: codes 0-255 are pixels, 256 clear, 257 end; at most 12 bits),
 * packed into `out`; returns the bytes written. `slots` is the string table's scratch space. */
static Py_ssize_t compress(const uint8_t *pixels, Py_ssize_t n, uint8_t *out, uint32_t *slots)
{
    BitWriter w = {out, 0, 0};
    int width = 9;
    uint32_t avail = FIRST_FREE;
    memset(slots, 0, HASH_SLOTS * sizeof(uint32_t));
    put_code(&w, CLEAR_CODE, width);
    uint32_t prefix = pixels[0];
    for (Py_ssize_t i = 1; i < n; i++) {
        uint32_t pixel = pixels[i], key = (prefix << 8) | pixel, h = HASH(prefix, pixel), entry;
        while ((entry = slots[h]) != 0 && (entry >> 12) != key)
            h = (h + 1) & (HASH_SLOTS - 1);
        if (entry) {  /* prefix+pixel is in the table: extend the match */
            prefix = entry & 0xFFF;
            continue;
        }
        put_code(&w, prefix, width);
        if (avail < MAX_CODES) {
            slots[h] = (key << 12) | avail;
            /* A decoder learns each code one step later, so widen as soon as the code just added no longer
             * fits: it may be the very next one written. */
            if (avail == (1u << width))
                width++;
            avail++;
        } else {  /* table full: start afresh */
            put_code(&w, CLEAR_CODE, width);
            memset(slots, 0, HASH_SLOTS * sizeof(uint32_t));
            width = 9;
            avail = FIRST_FREE;
        }
        prefix = pixel;
    }
    put_code(&w, prefix, width);
    /* Reading that last code, a decoder adds one more entry and widens if it fills the width: the end code
     * must be written at the width the decoder will then read. */
    if (avail < MAX_CODES && avail == (1u << width))
        width++;
    put_code(&w, END_CODE, width);
    for (; w.nbits > 0; w.nbits -= 8, w.bits >>= 8)
        *w.out++ = (uint8_t)w.bits;
    return w.out - out;
}

PyDoc_STRVAR(lzw_doc,
"lzw(current, previous, width, box, transparent) -> bytes\n\n"
"The GIF image data (minimum code size 8, sub-blocks, terminator) of `box` = (x0, y0, x1, y1) of `current`.\n"
"Where `previous` is not None, pixels equal to it are written as `transparent`. The GIL is released.");

static PyObject *lzw(PyObject *Py_UNUSED(self), PyObject *args)
{
    Py_buffer cur, prev = {0};
    PyObject *prev_obj;
    Py_ssize_t width, x0, y0, x1, y1;
    int transparent;
    if (!PyArg_ParseTuple(args, "y*On(nnnn)i", &cur, &prev_obj, &width, &x0, &y0, &x1, &y1, &transparent))
        return NULL;
    int have_prev = prev_obj != Py_None;
    if (have_prev && PyObject_GetBuffer(prev_obj, &prev, PyBUF_SIMPLE) < 0) {
        PyBuffer_Release(&cur);
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t height = width > 0 ? cur.len / width : 0;
    if (width < 1 || cur.len % width || (have_prev && prev.len != cur.len)) {
        PyErr_SetString(PyExc_ValueError, "frames must be the same size, whole rows of `width`");
    } else if (x0 < 0 || y0 < 0 || x1 > width || y1 > height || x0 >= x1 || y0 >= y1) {
        PyErr_SetString(PyExc_ValueError, "box must be a non-empty part of the frame");
    } else if (transparent < 0 || transparent > 255) {
        PyErr_SetString(PyExc_ValueError, "transparent must be a palette index");
    } else {
        Py_ssize_t w = x1 - x0, n = w * (y1 - y0);
        /* At most one 12-bit code a pixel plus clear and end codes; then a length byte every 255. */
        Py_ssize_t packed_max = n * 2 + 16, framed_max = packed_max + packed_max / 255 + 4;
        uint8_t *pixels = PyMem_RawMalloc((size_t)n), *packed = PyMem_RawMalloc((size_t)packed_max);
        uint32_t *slots = PyMem_RawMalloc(HASH_SLOTS * sizeof(uint32_t));
        result = pixels && packed && slots ? PyBytes_FromStringAndSize(NULL, framed_max) : PyErr_NoMemory();
        if (result != NULL) {
            const uint8_t *a = cur.buf, *b = have_prev ? prev.buf : NULL;
            uint8_t t = (uint8_t)transparent, *framed = (uint8_t *)PyBytes_AS_STRING(result), *o = framed;
            Py_BEGIN_ALLOW_THREADS
            for (Py_ssize_t y = y0, i = 0; y < y1; y++) {
                const uint8_t *row = a + y * width + x0, *before = b ? b + y * width + x0 : NULL;
                for (Py_ssize_t x = 0; x < w; x++, i++)
                    pixels[i] = (before && row[x] == before[x]) ? t : row[x];
            }
            Py_ssize_t size = compress(pixels, n, packed, slots);
            *o++ = 8;  /* minimum code size */
            for (Py_ssize_t at = 0; at < size; at += 255) {
                Py_ssize_t len = size - at < 255 ? size - at : 255;
                *o++ = (uint8_t)len;
                memcpy(o, packed + at, (size_t)len);
                o += len;
            }
            *o++ = 0;  /* block terminator */
            Py_END_ALLOW_THREADS
            if (_PyBytes_Resize(&result, o - framed) < 0)
                result = NULL;
        }
        PyMem_RawFree(pixels);
        PyMem_RawFree(packed);
        PyMem_RawFree(slots);
    }
    PyBuffer_Release(&cur);
    if (have_prev)
        PyBuffer_Release(&prev);
    return result;
}

static PyMethodDef methods[] = {
    {"map_frame", map_frame, METH_VARARGS, map_frame_doc},
    {"changed_box", changed_box, METH_VARARGS, changed_box_doc},
    {"lzw", lzw, METH_VARARGS, lzw_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "renderer.encoders._gifcodec",
    "Palette mapping and LZW for the GIF encoder (see gif.py).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__gifcodec(void)
{
    return PyModule_Create(&module);
}
