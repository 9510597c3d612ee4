/* One pass over the records of an uncompressed RecordBatch v2, in C (issue 14).
 *
 * headrace.record.framing checks a producer's batch record by record; in Python (over
 * aiokafka's decoder) that cost 0.2-0.3 us per record, a third of the broker's produce CPU.
 * This walk checks exactly what that path checks, with the same rules and messages, and
 * allocates nothing per record: framing.py keeps the rules of the topic (timestamp window,
 * keys) and builds the errors; it falls back to the Python walk when this module is absent.
 *
 * The rules are aiokafka's DefaultRecordBatch's (framing.py's fallback), not stricter ones,
 * so both paths agree on every batch: varints of at most 10 bytes, a record's body ending
 * exactly at its length, attributes read as a varint, a negative key/value length is null,
 * a header count >= 0, header keys of length >= 0 and valid UTF-8, no bytes after the
 * records. Unlike aiokafka it never reads past the buffer (its varints are bounds-checked).
 *
 * walk(batch, base_offset) returns one of
 *   (0, max_timestamp, min_timestamp, keyless, records_walked)   every record well framed
 *   (1, index, message)    a record's framing is broken (message as aiokafka words it);
 *                          bytes after the last record give index == records walked
 *   (2, index, offset)     a record's offset is not base_offset + index
 *   (3, index, None)       a header key of the record is not UTF-8
 *   (4, 0, None)           not a plain batch of int64 offsets: use the Python walk
 * max_timestamp starts at -1 (Kafka's "none") and min_timestamp at INT64_MAX.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

#define HEADER_SIZE 61
#define BASE_OFFSET_AT 0
#define ATTRIBUTES_AT 21
#define FIRST_TIMESTAMP_AT 27
#define MAX_TIMESTAMP_AT 35
#define RECORD_COUNT_AT 57
#define CODEC_MASK 0x07
#define TIMESTAMP_TYPE_MASK 0x08

enum outcome { WALKED = 0, BAD_FRAMING = 1, BAD_OFFSET = 2, BAD_HEADER_KEY = 3, USE_PYTHON = 4 };

static uint64_t
big_endian(const unsigned char *at, int width)
{
    uint64_t value = 0;
    for (int i = 0; i < width; i++) {
        value = (value << 8) | at[i];
    }
    return value;
}

/* A zigzag varint of at most 10 bytes, as aiokafka's decode_varint64 reads it (bits past
 * 64 are dropped). Returns 0, or -1 with *problem set ("Out of double range" or the
 * bounds message aiokafka gives when bytes run out). */
static int
read_varint(const unsigned char *buf, Py_ssize_t len, Py_ssize_t *pos, int64_t *out,
            const char **problem)
{
    uint64_t value = 0;
    int shift = 0;
    Py_ssize_t at = *pos;
    for (;;) {
        if (at >= len) {
            *problem = "bounds";
            *pos = at;
            return -1;
        }
        unsigned char byte = buf[at++];
        if (byte & 0x80) {
            value |= (uint64_t)(byte & 0x7f) << shift;
            shift += 7;
        } else {
            value |= (uint64_t)byte << shift;
            break;
        }
        if (shift > 63) {
            *problem = "Out of double range";
            return -1;
        }
    }
    *out = (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
    *pos = at;
    return 0;
}

static int
is_ascii(const unsigned char *at, Py_ssize_t size)
{
    for (Py_ssize_t i = 0; i < size; i++) {
        if (at[i] & 0x80) {
            return 0;
        }
    }
    return 1;
}

/* CPython's own strict decoder decides, so the rules are exactly bytes.decode("utf-8"). */
static int
is_utf8(const char *at, Py_ssize_t size)
{
    if (is_ascii((const unsigned char *)at, size)) {
        return 1;
    }
    PyObject *text = PyUnicode_DecodeUTF8(at, size, "strict");
    if (text == NULL) {
        PyErr_Clear();
        return 0;
    }
    Py_DECREF(text);
    return 1;
}

static PyObject *
framing_problem(Py_ssize_t index, PyObject *message)
{
    if (message == NULL) {
        return NULL;
    }
    return Py_BuildValue("(inN)", BAD_FRAMING, index, message);
}

static PyObject *
bounds_problem(Py_ssize_t index, Py_ssize_t size, Py_ssize_t pos)
{
    return framing_problem(
        index, PyUnicode_FromFormat("Can't read %zd bytes from pos %zd", size, pos));
}

/* The varint at *pos, or a framing problem of record ``index`` returned from the caller. */
#define VARINT(target)                                                                     \
    do {                                                                                   \
        const char *problem_ = NULL;                                                       \
        if (read_varint(buf, len, &pos, &(target), &problem_) < 0) {                       \
            if (problem_[0] == 'b') {                                                      \
                return bounds_problem(index, 1, pos);                                      \
            }                                                                              \
            return framing_problem(index, PyUnicode_FromString(problem_));                 \
        }                                                                                  \
    } while (0)

/* ``size`` bytes from pos are inside the buffer (no overflow: size is compared to what is
 * left). */
#define ROOM(size)                                                                         \
    do {                                                                                   \
        if ((size) > (int64_t)(len - pos)) {                                               \
            return bounds_problem(index, (Py_ssize_t)(size), pos);                         \
        }                                                                                  \
    } while (0)

static PyObject *
walk_records(const unsigned char *buf, Py_ssize_t len, int64_t base_offset)
{
    if (len < HEADER_SIZE || (buf[ATTRIBUTES_AT + 1] & CODEC_MASK) != 0) {
        return Py_BuildValue("(iiO)", USE_PYTHON, 0, Py_None);
    }
    int64_t batch_base = (int64_t)big_endian(buf + BASE_OFFSET_AT, 8);
    int64_t first_timestamp = (int64_t)big_endian(buf + FIRST_TIMESTAMP_AT, 8);
    int32_t count = (int32_t)(uint32_t)big_endian(buf + RECORD_COUNT_AT, 4);
    int log_append_time = (buf[ATTRIBUTES_AT + 1] & TIMESTAMP_TYPE_MASK) != 0;
    int64_t max_timestamp = (int64_t)big_endian(buf + MAX_TIMESTAMP_AT, 8);
    int64_t top = -1, bottom = INT64_MAX;
    int keyless = 0;
    Py_ssize_t pos = HEADER_SIZE;
    Py_ssize_t index = 0;
    for (; index < count; index++) {
        int64_t length, attributes, timestamp_delta, offset_delta, key_len, value_len,
            header_count;
        VARINT(length);
        Py_ssize_t start = pos;
        VARINT(attributes);
        VARINT(timestamp_delta);
        VARINT(offset_delta);
        VARINT(key_len);
        if (key_len >= 0) {
            ROOM(key_len);
            pos += (Py_ssize_t)key_len;
        } else {
            keyless = 1;
        }
        VARINT(value_len);
        if (value_len >= 0) {
            ROOM(value_len);
            pos += (Py_ssize_t)value_len;
        }
        VARINT(header_count);
        if (header_count < 0) {
            return framing_problem(
                index, PyUnicode_FromFormat("Found invalid number of record headers %lld",
                                            (long long)header_count));
        }
        for (; header_count > 0; header_count--) {
            int64_t header_key_len, header_value_len;
            VARINT(header_key_len);
            if (header_key_len < 0) {
                return framing_problem(
                    index, PyUnicode_FromFormat("Invalid negative header key size %lld",
                                                (long long)header_key_len));
            }
            ROOM(header_key_len);
            /* The key is decoded before its value's length is read, as aiokafka does. */
            if (!is_utf8((const char *)buf + pos, (Py_ssize_t)header_key_len)) {
                return Py_BuildValue("(inO)", BAD_HEADER_KEY, index, Py_None);
            }
            pos += (Py_ssize_t)header_key_len;
            VARINT(header_value_len);
            if (header_value_len >= 0) {
                ROOM(header_value_len);
                pos += (Py_ssize_t)header_value_len;
            }
        }
        if ((int64_t)(pos - start) != length) {
            return framing_problem(
                index, PyUnicode_FromFormat("Invalid record size: expected to read %lld bytes "
                                            "in record payload, but instead read %zd",
                                            (long long)length, pos - start));
        }
        /* Offsets as aiokafka computes them (int64, wrapping), compared with the exact
         * base_offset + index the Python walk expects. */
        int64_t offset = (int64_t)((uint64_t)batch_base + (uint64_t)offset_delta);
        if (base_offset > INT64_MAX - index || offset != base_offset + index) {
            return Py_BuildValue("(inL)", BAD_OFFSET, index, (long long)offset);
        }
        int64_t timestamp = log_append_time
            ? max_timestamp
            : (int64_t)((uint64_t)first_timestamp + (uint64_t)timestamp_delta);
        if (timestamp > top) {
            top = timestamp;
        }
        if (timestamp < bottom) {
            bottom = timestamp;
        }
    }
    if (pos != len) {
        return framing_problem(  /* framing.py names the last record (index - 1) */
            index, PyUnicode_FromFormat("%zd unconsumed bytes after all records consumed",
                                            len - pos));
    }
    return Py_BuildValue("(iLLOn)", WALKED, (long long)top, (long long)bottom,
                         keyless ? Py_True : Py_False, index);
}

static PyObject *
walk(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "walk(batch, base_offset) takes 2 arguments");
        return NULL;
    }
    int overflow = 0;
    long long base_offset = PyLong_AsLongLongAndOverflow(args[1], &overflow);
    if (base_offset == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (overflow) {
        return Py_BuildValue("(iiO)", USE_PYTHON, 0, Py_None);
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *result = walk_records((const unsigned char *)view.buf, view.len, (int64_t)base_offset);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef framing_methods[] = {
    {"walk", (PyCFunction)(void (*)(void))walk, METH_FASTCALL,
     "walk(batch, base_offset) -> tuple: check the records of an uncompressed batch."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef framing_module = {
    PyModuleDef_HEAD_INIT, "headrace.record._framing",
    "One pass over the records of an uncompressed RecordBatch v2 (see framing.py).", -1,
    framing_methods,
};

PyMODINIT_FUNC
PyInit__framing(void)
{
    return PyModule_Create(&framing_module);
}
