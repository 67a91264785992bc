"""setuptools entry: the top-level ``kernels/`` folder is installed as ``fastvis.kernels``."""
from setuptools import find_packages, setup

packages = find_packages(include=["fastvis", "fastvis.*"]) + ["fastvis.kernels"]

setup(
    packages=packages,
    package_dir={"fastvis": "fastvis", "fastvis.kernels": "kernels"},
)
