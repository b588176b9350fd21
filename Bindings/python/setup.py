"""Marks the distribution as binary: the package carries liblowbit.so and the lowbit tool, so its
wheel installs as platform-specific (scripts/build-wheel.sh then tags it py3-none-<platform>)."""
from setuptools import setup
from setuptools.dist import Distribution


class BinaryDistribution(Distribution):
    def has_ext_modules(self):
        return True


setup(distclass=BinaryDistribution)
