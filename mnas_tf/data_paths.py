"""Resolves `synthetic://SPLIT` input paths to the embedded default dataset on disk.

Experiments that train on the default data name their inputs `synthetic://train`,
`synthetic://val`, `synthetic://search_train` or `synthetic://search_val`; the dataset is
generated (once, then cached) when an experiment that needs it is loaded.
"""

from __future__ import annotations

from mnas_tf.configs.retinanet import SYNTHETIC

SPLITS = ("train", "val", "search_train", "search_val")


def _split(path: str) -> str:
    split = path[len(SYNTHETIC):]
    if split not in SPLITS:
        raise ValueError(f"unknown synthetic split {path!r}; use one of "
                         f"{', '.join(SYNTHETIC + s for s in SPLITS)}")
    return split


def resolve_data_paths(params, progress: bool = True):
    """Replaces synthetic:// references in a RetinaNet experiment with real paths."""
    task = params.task
    fields = [(task.train_data, "input_path", "records"),
              (task.validation_data, "input_path", "records"),
              (task, "annotation_file", "annotations")]
    wanted = [(obj, name, kind, _split(getattr(obj, name))) for obj, name, kind in fields
              if isinstance(getattr(obj, name), str) and getattr(obj, name).startswith(SYNTHETIC)]
    if not wanted:
        return params
    from mnas_tf.data import default_dataset
    data = default_dataset(progress=progress)
    for obj, name, kind, split in wanted:
        setattr(obj, name, getattr(data, f"{split}_{kind}"))
    if task.model.num_classes < data.num_classes:
        raise ValueError(f"model.num_classes {task.model.num_classes} < {data.num_classes} "
                         f"needed by the synthetic dataset")
    return params
