"""The export's one error class, in a module of its own.

`python -m export.tflite` runs that file as `__main__`; if the class lived there, a second
copy of the module (imported by the code it calls) would raise a different class than the
one `main()` catches, and its one-line errors would escape as tracebacks.
"""


class ExportError(RuntimeError):
    """A model that did not convert or whose TFLite outputs differ from Keras."""
