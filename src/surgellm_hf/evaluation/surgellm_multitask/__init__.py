"""The `evaluate` module folder: `evaluate.load(<this folder>)` loads `surgellm_multitask.py` from it."""
