"""Data layer: COCO-format datasets -> validated TFRecords for Model Garden.

- `coco`: load and validate COCO JSON + image folder (`DataError` on bad data).
- `prepare`: write sharded TFRecords (Model Garden's converter) + cleaned JSON.
- `split`: deterministic search-train / search-val split by image id.
- `synthetic`: the embedded, cached default dataset of synthetic shapes.

TensorFlow and Model Garden are imported only when records are written or
read, so validation and splitting stay light. CLI: ``python -m mnas_tf.data``.

Note: the name `prepare` here is the function; the module is
``importlib.import_module("mnas_tf.data.prepare")``.
"""

from mnas_tf.data.coco import DataError, format_skip_report, load_coco, validate_coco
from mnas_tf.data.prepare import PreparedSplit, prepare, read_examples
from mnas_tf.data.split import split_coco, split_file
from mnas_tf.data.synthetic import DatasetPaths, SyntheticConfig, default_dataset, generate

__all__ = [
    "DataError",
    "DatasetPaths",
    "PreparedSplit",
    "SyntheticConfig",
    "default_dataset",
    "format_skip_report",
    "generate",
    "load_coco",
    "prepare",
    "read_examples",
    "split_coco",
    "split_file",
    "validate_coco",
]
