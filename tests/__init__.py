"""The test suite, a package so test modules import shared helpers as ``tests.<module>`` (``tests._helpers``,
``tests._serving_utils``, ...). Its folders mirror ``src/surgellm_hf``: ``tests/serving`` tests
``surgellm_hf.serving``."""
