"""Config dataclasses (Model Garden hyperparams) and registered experiments."""
