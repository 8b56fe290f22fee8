"""The model zoo's recipes, shipped inside the package as ``nengo_hybrid.models``.

Each file is a Nengo script (Nengo GUI opens it) with a ``RECIPE`` dict that
``nengo-hybrid`` reads without running the file; see `nengo_hybrid.zoo`.
"""
