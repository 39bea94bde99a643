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
    refs = [task.train_data.input_path, task.validation_data.input_path, task.annotation_file]
    if not any(isinstance(r, str) and r.startswith(SYNTHETIC) for r in refs):
        return params
    from mnas_tf.data import default_dataset
    data = default_dataset(progress=progress)
    records = {s: getattr(data, f"{s}_records") for s in SPLITS}
    annotations = {s: getattr(data, f"{s}_annotations") for s in SPLITS}
    if isinstance(task.train_data.input_path, str) and task.train_data.input_path.startswith(SYNTHETIC):
        task.train_data.input_path = records[_split(task.train_data.input_path)]
    if isinstance(task.validation_data.input_path, str) and task.validation_data.input_path.startswith(SYNTHETIC):
        task.validation_data.input_path = records[_split(task.validation_data.input_path)]
    if task.annotation_file and task.annotation_file.startswith(SYNTHETIC):
        task.annotation_file = annotations[_split(task.annotation_file)]
    if task.model.num_classes < data.num_classes:
        raise ValueError(f"model.num_classes {task.model.num_classes} < {data.num_classes} "
                         f"needed by the synthetic dataset")
    return params
