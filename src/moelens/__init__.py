"""moelens: build and look inside Mixture-of-Experts language models.

Importing the package is cheap: heavy modules (torch, transformers) are imported by the
subpackages that need them. Importing :mod:`moelens.models` registers the ``moelens`` model
type with transformers' Auto classes.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
