"""Latency models: connectivity-aware lookup tables and on-device (adb) TFLite benchmarking."""
