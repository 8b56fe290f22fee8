"""Deployment plans, shipped inside the package as ``nengo_hybrid.deploy``.

One JSON file per model and hardware profile; see `nengo_hybrid.hardware.plans`
and ``README.md`` in this folder.
"""
