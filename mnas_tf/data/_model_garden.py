"""Import Model Garden's COCO converter without its import-time side effects.

`official.vision.data.create_coco_tf_record` is an absl script: importing it
defines a dozen global flags (``--num_shards``, ``--image_dir``, ...) and sets
the TensorFlow logger to INFO. A second program that defines one of those flag
names would crash the import with `DuplicateFlagError`, so in that case the
module is loaded again with its flags sent to a private `FlagValues`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import logging
import sys
import types

_MODULE = "official.vision.data.create_coco_tf_record"
_ISOLATED = "mnas_tf.data._isolated_create_coco_tf_record"


@functools.lru_cache(maxsize=None)
def create_coco_tf_record() -> types.ModuleType:
    """The converter module (cached), safe next to other absl flag users."""
    from absl import flags

    tf_logger = logging.getLogger("tensorflow")
    level = tf_logger.level
    try:
        return importlib.import_module(_MODULE)
    except flags.DuplicateFlagError:
        sys.modules.pop(_MODULE, None)
        return _load_isolated()
    finally:
        tf_logger.setLevel(level)  # undo its logger.setLevel(INFO)


def _load_isolated() -> types.ModuleType:
    """Execute the converter with every DEFINE_* bound to private flags."""
    import absl
    from absl import flags

    private = flags.FlagValues()
    shim = types.ModuleType("absl.flags")
    shim.__dict__.update(flags.__dict__)
    for name in dir(flags):
        if name.startswith("DEFINE"):
            setattr(shim, name, functools.partial(getattr(flags, name), flag_values=private))
    shim.FLAGS = private

    spec = importlib.util.find_spec(_MODULE)
    module = importlib.util.module_from_spec(spec)
    saved = sys.modules["absl.flags"], absl.flags
    sys.modules["absl.flags"], absl.flags = shim, shim
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules["absl.flags"], absl.flags = saved
    sys.modules[_ISOLATED] = module
    return module
