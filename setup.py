"""Packaging for mnas-tf (install with `pip install -e .`)."""

from setuptools import find_packages, setup

setup(
    name="mnas-tf",
    version="0.1.0",
    description=(
        "Mobile object-detection NAS (MnasFPN, MSNAS) on TensorFlow 2 / "
        "tf_keras and the TF Model Garden."
    ),
    python_requires=">=3.10",
    # configs/ is not a package: the project is installed editable
    # (`pip install -e .`) and code locates configs relative to the repo root.
    packages=find_packages(include=["mnas_tf*", "search*", "latency*", "export*"]),
    install_requires=[
        "tensorflow~=2.20.0",
        "tf-models-official~=2.20.0",
        "tf-keras~=2.20.0",
        "tensorflow-model-optimization>=0.8",
        "pycocotools>=2.0.7",
        "ai-edge-litert>=1.0.1",
        # Model Garden's COCO evaluator calls int() on a 1-element array,
        # which NumPy 2.4 rejects.
        "numpy>=1.26,<2.4",
        "pyyaml",
        "tqdm",
        "matplotlib",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-timeout",
            "pytest-xdist",
            "hypothesis",
            "ray>=2.9",
        ],
        "distributed": ["ray>=2.9"],
    },
)
