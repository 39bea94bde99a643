"""mnas-tf: mobile detection NAS on TensorFlow 2 / Model Garden."""
