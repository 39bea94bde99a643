"""The one place a search config's `data:` section becomes the evaluators' data paths.

`resolve_data(config)` prepares the user's COCO dataset (once, cached: mnas_tf.data.user)
and returns the config with `proxy.train_data/val_data/val_annotations` and
`supernet.train_data/val_data/val_annotations` pointing at its records, and
`task.model.num_classes` (max category id + 1) appended to the proxy's and the super-net's
Model Garden overrides. `data: null` returns the config unchanged (the synthetic data).
"""

from __future__ import annotations

import dataclasses
import sys

from search.config import SearchConfig, SearchConfigError


def num_classes_override(num_classes: int) -> dict:
    return {"task": {"model": {"num_classes": int(num_classes)}}}


def resolve_data(config: SearchConfig, progress: bool = True) -> SearchConfig:
    """The config on its prepared data; SearchConfigError (one line) for bad data."""
    d = config.data
    if d is None:
        return config
    from mnas_tf.data.coco import DataError
    from mnas_tf.data.user import user_dataset
    val = d.val or {}
    try:
        data = user_dataset(d.train["annotations"], d.train["images"],
                            val.get("annotations"), val.get("images"),
                            val_fraction=d.val_fraction, progress=progress)
    except DataError as e:
        raise SearchConfigError(str(e)) from None
    if progress:
        print(f"[data] {len(data.category_names)} categories ({', '.join(data.category_names)})"
              f", model.num_classes {data.num_classes}; search-val "
              f"{'held out of train' if data.held_out else 'from data.val'} ({data.root})",
              file=sys.stderr)
    override = num_classes_override(data.num_classes)
    proxy = dataclasses.replace(
        config.proxy, train_data=data.train_records, val_data=data.val_records,
        val_annotations=data.val_annotations,
        params_override=(*config.proxy.params_override, override))
    supernet = dataclasses.replace(
        config.supernet, train_data=data.train_records, val_data=data.val_records,
        val_annotations=data.val_annotations, num_classes=data.num_classes)
    return dataclasses.replace(config, proxy=proxy, supernet=supernet)
