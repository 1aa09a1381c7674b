/*
 * The planning process's hot loop in C: duplicate detection over a batch of fingerprints.
 *
 * An optional accelerator of dedupe.DuplicateFinder.add_batch, with exactly its semantics and on
 * the same tables (array('q') open-addressing tables owned by dedupe.SeenKeys: slot = fingerprint
 * modulo the size, as Python's % computes it; linear probing; 0 = empty). The Python loop costs
 * 1.3-3 us per user at a million users; this costs a few cache misses. When the extension is not
 * built (no compiler), dedupe.py runs its own loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* A C-contiguous buffer of int64 (array('q')); writable when asked. */
static int
int64_buffer(PyObject *obj, Py_buffer *view, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0) {
        return -1;
    }
    const char *format = view->format ? view->format : "B";
    if (view->itemsize != 8 || (strcmp(format, "q") != 0 && strcmp(format, "l") != 0)) {
        PyErr_Format(PyExc_TypeError, "%s must be an array('q')", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

/* Python's fp % size (never negative). */
static inline Py_ssize_t
home_slot(int64_t fp, Py_ssize_t size)
{
    int64_t slot = fp % (int64_t)size;
    return (Py_ssize_t)(slot < 0 ? slot + size : slot);
}

/* -1 if fp is stored, else the empty slot where it goes. The table is never full (70% load). */
static inline Py_ssize_t
find(const int64_t *table, Py_ssize_t size, int64_t fp)
{
    Py_ssize_t slot = home_slot(fp, size);
    for (;;) {
        int64_t stored = table[slot];
        if (stored == 0) {
            return slot;
        }
        if (stored == fp) {
            return -1;
        }
        slot = slot + 1 == size ? 0 : slot + 1;
    }
}

PyDoc_STRVAR(add_batch_doc,
"add_batch(email_table, user_id_table, email_fps, user_id_fps) -> (duplicates, emails, user_ids)\n"
"\n"
"Check each user (in order) against the tables, and store the keys of each user that is no\n"
"duplicate. Fingerprint 0 means no such key. The caller makes sure the tables have room for\n"
"every key of the batch. Returns the (index, 0 for email / 1 for user_id) of each duplicate and\n"
"how many keys were stored in each table.");

static PyObject *
add_batch(PyObject *module, PyObject *args)
{
    PyObject *email_table_obj, *user_id_table_obj, *email_fps_obj, *user_id_fps_obj;
    if (!PyArg_ParseTuple(args, "OOOO:add_batch", &email_table_obj, &user_id_table_obj,
                          &email_fps_obj, &user_id_fps_obj)) {
        return NULL;
    }
    Py_buffer views[4];
    int taken = 0;
    PyObject *result = NULL;
    if (int64_buffer(email_table_obj, &views[0], 1, "email_table") < 0) goto done;
    taken = 1;
    if (int64_buffer(user_id_table_obj, &views[1], 1, "user_id_table") < 0) goto done;
    taken = 2;
    if (int64_buffer(email_fps_obj, &views[2], 0, "email_fps") < 0) goto done;
    taken = 3;
    if (int64_buffer(user_id_fps_obj, &views[3], 0, "user_id_fps") < 0) goto done;
    taken = 4;

    int64_t *email_table = views[0].buf, *user_id_table = views[1].buf;
    const int64_t *email_fps = views[2].buf, *user_id_fps = views[3].buf;
    Py_ssize_t email_size = views[0].len / 8, user_id_size = views[1].len / 8;
    Py_ssize_t users = views[2].len / 8;
    if (views[3].len / 8 != users) {
        PyErr_SetString(PyExc_ValueError, "email_fps and user_id_fps differ in length");
        goto done;
    }
    if (email_size == 0 || user_id_size == 0) {
        PyErr_SetString(PyExc_ValueError, "a table has no slots");
        goto done;
    }
    PyObject *duplicates = PyList_New(0);
    if (duplicates == NULL) goto done;
    Py_ssize_t emails_stored = 0, user_ids_stored = 0;
    for (Py_ssize_t index = 0; index < users; index++) {
        int64_t email = email_fps[index], user_id = user_id_fps[index];
        Py_ssize_t email_slot = 0, user_id_slot = 0;
        int which = -1;
        if (email != 0 && (email_slot = find(email_table, email_size, email)) < 0) {
            which = 0;
        }
        else if (user_id != 0 && (user_id_slot = find(user_id_table, user_id_size, user_id)) < 0) {
            which = 1;
        }
        if (which >= 0) {
            PyObject *found = Py_BuildValue("(ni)", index, which);
            if (found == NULL || PyList_Append(duplicates, found) < 0) {
                Py_XDECREF(found);
                Py_DECREF(duplicates);
                goto done;
            }
            Py_DECREF(found);
            continue;
        }
        if (email != 0) {
            email_table[email_slot] = email;
            emails_stored++;
        }
        if (user_id != 0) {
            user_id_table[user_id_slot] = user_id;
            user_ids_stored++;
        }
    }
    result = Py_BuildValue("(Nnn)", duplicates, emails_stored, user_ids_stored);

done:
    for (int i = 0; i < taken; i++) {
        PyBuffer_Release(&views[i]);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"add_batch", add_batch, METH_VARARGS, add_batch_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    "orchestrator._dedupe",
    "C accelerator of dedupe.DuplicateFinder.add_batch (optional: dedupe.py has the same loop).",
    -1,
    methods,
};

PyMODINIT_FUNC
PyInit__dedupe(void)
{
    return PyModule_Create(&module);
}
