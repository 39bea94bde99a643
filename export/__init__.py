"""Export of searched detectors to TFLite (float and quantised)."""
