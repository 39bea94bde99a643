"""Imports every module that registers something into Model Garden's factories.

Model Garden registers builders, configs and tasks as an import side effect; import this
module before asking its registries for `mnasfpn`, `mobilenet_pyramid` or our experiments.
"""

# pylint: disable=unused-import
from official.vision import registry_imports  # noqa: F401  Model Garden's own

from mnas_tf.configs import fasterrcnn, retinanet  # noqa: F401  experiments + configs
from mnas_tf.modeling import backbones, mnasfpn, msnas, ssdlite  # noqa: F401  builders
from mnas_tf import tasks  # noqa: F401  task class
